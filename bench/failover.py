"""Failover bench: ``kill -9`` of the primary of a pg_auto_failover formation under a write
load over the API; the secondary takes over, the API follows, no acknowledged write is lost.

    .venv/bin/python bench/failover.py [--clients 4] [--load-s 8] [--after-s 5] [--keep]

Everything runs in a temporary var dir (``GRIDATLAS_VAR_DIR``): the formation (monitor,
primary, secondary: gis/failover.py) in its ``ha`` folder, never the shared cluster. The
set-up is the fault bench's (bench/faults.py ``prepare``: schema, the Nanjing extract,
delineation, one login per client) on the multi-host URL, and so is the load (its clients
keep a ledger of every write the API acknowledged). The API (uvicorn, a process of its own)
runs on the multi-host URL with ``target_session_attrs=read-write``.

After ``--load-s`` seconds of load, the primary's postmaster and its keeper
(``pg_autoctl run``, the whole session) get SIGKILL, so it cannot restart in place. The
monitor promotes the secondary; the API's next connections find it. Printed: the failover
seconds (from the kill to the first write acknowledged after the outage), acknowledged
writes, lost (every acknowledged write must be on the new primary), 5xx other than 503 and
hangs. Exit status 1 when a write is lost, the API never answered again, or a 5xx other
than 503 or a hang was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.fault_load import Client, Seen, probe, serve  # noqa: E402
from bench.faults import _free_port, _own_environment, check_writes, prepare  # noqa: E402


class TimedAcks(list):
    """The clients' ledger (``Seen.acks``), with the moment each write was acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item) -> None:  # called under Seen.lock
        self.times.append(time.monotonic())
        super().append(item)


def failover_seconds(times: list[float], killed_at: float) -> float | None:
    """From the kill to the first acknowledgement after the longest pause that follows it
    (a write whose commit was already done may still be answered just after the kill)."""
    after = [t for t in times if t >= killed_at]
    if not after:
        return None
    points = [killed_at, *after]
    gaps = [(points[i + 1] - points[i], points[i + 1]) for i in range(len(points) - 1)]
    _gap, back_at = max(gaps)
    return back_at - killed_at


def run_failover(args: argparse.Namespace, var_dir: Path) -> dict:
    """Formation, set-up, API, load, one kill of the primary, the check. Returns figures."""
    from gis import failover

    formation = failover.Formation(var_dir / "ha")
    t0 = time.monotonic()
    url = failover.up(formation)
    os.environ["GRIDATLAS_DATABASE_URL"] = url  # for prepare() and the API
    from gis.settings import get_settings

    get_settings.cache_clear()  # read again, with the URL
    print(f"formation up in {time.monotonic() - t0:.0f} s: {_states(formation)}", flush=True)
    area, logins, _city = prepare(args.clients, 10, args.seed)
    print(f"set up in {time.monotonic() - t0:.0f} s: grid {area.grid_id} "
          f"({len(area.buildings)} buildings), {len(logins)} clients", flush=True)  # fmt: skip
    # the set-up's writes are on the secondary too before the load starts
    failover.wait_for(formation, {"primary"}, {"secondary"}, timeout=120)
    sync = [ln for ln in failover.settings_text(formation).splitlines() if "synchronous" in ln]
    print(f"replication: {' '.join(sync[0].split()) if sync else '?'}", flush=True)

    port = _free_port()
    api = serve(port, var_dir / "api.log")
    base = f"http://127.0.0.1:{port}"
    seen, stop = Seen(), threading.Event()
    seen.acks = TimedAcks()
    threads = [Client(i, login, area, base, seen, stop, args.client_timeout, args.seed)
               for i, login in enumerate(logins)]  # fmt: skip
    threads.append(threading.Thread(target=probe, args=(base, seen, stop, args.client_timeout),
                                    daemon=True))  # fmt: skip
    try:
        for t in threads:
            t.start()
        time.sleep(args.load_s)
        old = failover.primary(formation)
        before = len(seen.acks)
        killed_at = time.monotonic()
        failover.kill_node(formation, old)
        print(f"killed {old} (postmaster and keeper) after {before} acknowledged writes",
              flush=True)  # fmt: skip
        deadline = killed_at + args.wait_s
        back = None
        while time.monotonic() < deadline:
            with seen.lock:
                n_after = len(seen.acks) - before
            if n_after > len(logins) and failover.primary(formation) not in (None, old):
                back = failover_seconds(list(seen.acks.times), killed_at)
                break
            time.sleep(0.5)
        new = failover.primary(formation)
        print(f"new primary {new}; writes acknowledged again after "
              f"{'-' if back is None else f'{back:.1f}'} s", flush=True)  # fmt: skip
        time.sleep(args.after_s)  # the load runs on the new primary a little
        api_kept = api.poll() is None  # the same API process throughout: never restarted
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=args.client_timeout + 5)
        api.terminate()
        try:
            api.wait(timeout=15)
        except Exception:  # noqa: BLE001 - a stuck API is killed
            api.kill()
    back = failover_seconds(list(seen.acks.times), killed_at) if back is not None else None
    lost, duplicated, _per_kind = check_writes(formation, list(seen.acks))
    return {
        "old_primary": old,
        "api_kept": api_kept,
        "new_primary": new,
        "failover_s": back,
        "acknowledged": len(seen.acks),
        "acknowledged_after_kill": sum(t >= killed_at for t in seen.acks.times),
        "lost": lost,
        "duplicated": duplicated,
        "answers_503": seen.statuses[503],
        "no_retry_after": seen.no_retry_after,
        "other_5xx": sum(n for s, n in seen.statuses.items() if s >= 500 and s != 503),
        "hangs": seen.hangs,
        "samples": seen.samples,
        "statuses": dict(sorted(seen.statuses.items())),
    }


def _states(formation) -> str:
    from gis import failover

    return ", ".join(f"{s['name']} {s['state']}" for s in failover.states(formation))


def report(r: dict, client_timeout: float) -> int:
    back = r["failover_s"]
    rows = [
        ("failover seconds (kill to next acknowledged write)",
         "API never answered" if back is None else f"{back:.1f}", back is not None),
        ("acknowledged writes (after the kill)",
         f"{r['acknowledged']} ({r['acknowledged_after_kill']})", r["acknowledged_after_kill"] > 0),
        ("acknowledged writes lost", str(r["lost"]), r["lost"] == 0),
        ("the same API process throughout", "yes" if r["api_kept"] else "NO", r["api_kept"]),
        ("writes stored twice", str(r["duplicated"]), r["duplicated"] == 0),
        ("503 answers / without Retry-After", f"{r['answers_503']} / {r['no_retry_after']}",
         r["no_retry_after"] == 0),
        ("5xx other than 503", str(r["other_5xx"]), r["other_5xx"] == 0),
        (f"hangs (no answer in {client_timeout:g} s)", str(r["hangs"]), r["hangs"] == 0),
    ]  # fmt: skip
    print()
    print(f"primary {r['old_primary']} killed, {r['new_primary']} took over")
    print(f"{'measure':52} {'value':>22}  goal")
    for name, value, ok in rows:
        print(f"{name:52} {value:>22}  {'ok' if ok else 'MISSED'}")
    print(f"answers seen: {r['statuses']}; load average {os.getloadavg()[0]:.1f}")
    for sample in r["samples"]:
        print(f"  unexpected: {sample}")
    return 0 if all(ok for _n, _v, ok in rows) else 1


def tear_down(var_dir: Path, *, keep: bool) -> None:
    from gis import failover

    formation = failover.Formation(var_dir / "ha")
    if formation.is_created:
        failover.down(formation)
    if not keep:
        shutil.rmtree(var_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4, help="client threads (half staff)")
    ap.add_argument("--load-s", type=float, default=8.0, help="load before the kill, s")
    ap.add_argument("--after-s", type=float, default=5.0, help="load after the failover, s")
    ap.add_argument("--wait-s", type=float, default=180.0, help="longest wait for the API, s")
    ap.add_argument("--client-timeout", type=float, default=30.0, help="a hang, s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the var dir (and formation)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    var_dir = Path(tempfile.mkdtemp(prefix="ga-failover-"))
    _own_environment(var_dir)
    print(f"var dir {var_dir}; load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        result = run_failover(args, var_dir)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False))
        return report(result, args.client_timeout)
    finally:
        tear_down(var_dir, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
