"""The load of bench/faults.py: tablets writing over the API, and a probe of its health.

Each client logs in and writes in a loop, one ``Idempotency-Key`` per write, retrying a
refused or failed write with the same key until the API acknowledges it (2xx); it keeps a
ledger of what was acknowledged (the id answered and a token written into the record).
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "320104"  # ID numbers of the residents made here (the synthetic ledger uses 320102)


@dataclass
class Area:
    """Where the clients work: a community, one of its grids and the grid's buildings."""

    community_id: int
    grid_id: int
    buildings: list[int]


@dataclass
class Login:
    username: str
    password: str
    role: str


# --- the API and its clients -----------------------------------------------------------


def serve(port: int, log: Path) -> subprocess.Popen:
    """The API as a process of its own; its log (a warning per refused request) to ``log``."""
    import httpx

    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "error", "--no-access-log"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the API did not start (see {log})")


@dataclass
class Ack:
    """A write the API acknowledged: what, the id it answered, the token written into it."""

    kind: str
    id: int
    token: str
    user: str


@dataclass
class Seen:
    """What the clients and the probe saw, shared by every thread (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    no_retry_after: int = 0
    hangs: int = 0
    transport_errors: int = 0
    samples: list[str] = field(default_factory=list)  # the first few unexpected answers
    acks: list[Ack] = field(default_factory=list)
    ok_times: list[float] = field(default_factory=list)  # monotonic times of 2xx (probe)

    def note(self, status: int, has_retry_after: bool, text: str) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 503 and not has_retry_after:
                self.no_retry_after += 1
            unexpected = (status >= 500 and status != 503) or status in (401, 404, 409, 422)
            if unexpected and len(self.samples) < 10:
                self.samples.append(f"{status} {text[:300]}")


class Client(threading.Thread):
    """One tablet: logs in, then writes in a loop, retrying each write with its key."""

    def __init__(self, n: int, login: Login, area: Area, base: str, seen: Seen,
                 stop: threading.Event, timeout: float, seed: int) -> None:  # fmt: skip
        super().__init__(daemon=True, name=f"client-{n}")
        self.n, self.login, self.area, self.base = n, login, area, base
        self.seen, self.stop, self.timeout = seen, stop, timeout
        self.rng = random.Random(seed * 1000 + n)
        self.made = 0
        self.residents_left = 250  # a staff login may look up 300 ID numbers in 10 minutes

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.base, timeout=self.timeout) as http:
            while not self.stop.is_set() and not self._log_in(http):
                time.sleep(0.5)
            while not self.stop.is_set():
                kind, path, body, token = self._next_write()
                self._write(http, kind, path, body, token)
                time.sleep(self.rng.uniform(0.05, 0.15))

    def _log_in(self, http) -> bool:
        body = {"username": self.login.username, "password": self.login.password}
        r = self._send(http, "/api/auth/login", body, None)
        if r is not None and r.status_code == 200:
            http.headers["Authorization"] = f"Bearer {r.json()['token']}"
            return True
        return False

    def _next_write(self) -> tuple[str, str, dict, str]:
        from gis.ledger.entries import ORG_KINDS
        from gis.ledger.idcard import make_id_number

        self.made += 1
        token = f"faults-{self.n}-{self.made}-{secrets.token_hex(4)}"
        building = self.rng.choice(self.area.buildings)
        if self.login.role == "committee_staff":
            if self.residents_left > 0 and self.rng.random() < 0.3:
                self.residents_left -= 1
                born = dt.date(1950, 1, 1) + dt.timedelta(days=self.made)
                number = make_id_number(REGION, born, self.n)
                body = {"name": "测试居民", "id_number": number, "building_id": building,
                        "room": f"{100 + self.made % 600}", "notes": token}  # fmt: skip
                return "resident", "/api/residents", body, token
            body = {"name": f"故障测试单位 {token}", "kind": ORG_KINDS[0],
                    "community_id": self.area.community_id, "notes": token}  # fmt: skip
            return "organisation", "/api/ledgers/organisations", body, token
        if self.rng.random() < 0.65:
            return "checkin", "/api/patrol/checkins", {"building_id": building}, token
        body = {"category": "other", "description": token, "building_id": building}
        return "problem", "/api/problems", body, token

    def _write(self, http, kind: str, path: str, body: dict, token: str) -> None:
        key = token  # one key per write, reused by every retry of it
        while not self.stop.is_set():
            r = self._send(http, path, body, key)
            if r is None:
                time.sleep(0.2)
                continue
            if 200 <= r.status_code < 300:
                with self.seen.lock:
                    ack = Ack(kind, int(r.json()["id"]), token, self.login.username)
                    self.seen.acks.append(ack)
                return
            if r.status_code >= 500 or r.status_code == 429:
                time.sleep(0.3)  # Retry-After says 5 s; sooner, to see when it is back
                continue
            if r.status_code == 401:  # a login lost with the database: log in again
                self._log_in(http)
                continue
            return  # refused (a 4xx): not acknowledged, nothing to check

    def _send(self, http, path: str, body: dict, key: str | None):
        import httpx

        headers = {"Idempotency-Key": key} if key else {}
        try:
            r = http.post(path, json=body, headers=headers)
        except httpx.TimeoutException:
            with self.seen.lock:
                self.seen.hangs += 1
            return None
        except httpx.TransportError as err:
            with self.seen.lock:
                self.seen.transport_errors += 1
                if len(self.seen.samples) < 10:
                    self.seen.samples.append(f"transport error: {err!r}")
            return None
        self.seen.note(r.status_code, "retry-after" in r.headers, r.text)
        return r


def probe(base: str, seen: Seen, stop: threading.Event, timeout: float) -> None:
    """Ask /api/health five times a second; the times of its 200s say when it was back."""
    import httpx

    with httpx.Client(base_url=base, timeout=timeout) as http:
        while not stop.is_set():
            try:
                r = http.get("/api/health")
                seen.note(r.status_code, "retry-after" in r.headers, r.text)
                if r.status_code == 200:
                    with seen.lock:
                        seen.ok_times.append(time.monotonic())
            except httpx.TimeoutException:
                with seen.lock:
                    seen.hangs += 1
            except httpx.TransportError:
                with seen.lock:
                    seen.transport_errors += 1
            time.sleep(0.2)
