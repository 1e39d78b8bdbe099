"""A burst of requests, more than the threads and the pool's connections, all answered.

The standstill this guards against (issue 16): a request holds its pool connection
between the steps FastAPI runs in threads (the dependency's entry, the handler, the commit),
so under a burst every thread could end up blocked in the pool's checkout while the
requests holding the connections waited for a thread — nothing moved until the pool's
timeout answered 503 (bench/load.py at 300 req/s: 3 req/s, 365 answers 503, idle CPUs).
``api.deps.db_slot`` makes a request wait on the event loop, holding no thread, for one of
fewer slots than threads and connections. Over real HTTP (uvicorn), with the app's own
sizes: with the slot removed this burst of 400 answers hundreds of 503s.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from urllib.parse import urlsplit

from api import deps
from api.app import THREADS
from tests.conftest import serve_app

CLIENTS = 400  # well past the 32 threads and the 40 connections of the pool
ROUNDS = 2


def _burst(base: str) -> Counter:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    start = threading.Barrier(CLIENTS)
    seen: Counter = Counter()
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.connect()
            start.wait()
            for _ in range(ROUNDS):
                conn.request("GET", "/api/health")
                r = conn.getresponse()
                r.read()
                with lock:
                    seen[r.status] += 1
        except OSError as err:  # no answer at all (a timeout, a reset): counted, not raised
            with lock:
                seen[type(err).__name__] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def test_the_slots_are_fewer_than_the_threads_and_the_connections():
    # the pool holds THREADS // 2 connections and up to THREADS // 2 + 8 more (api.app)
    assert deps.DB_SLOTS < THREADS <= THREADS // 2 + THREADS // 2 + 8


def test_a_burst_past_the_threads_and_the_pool_is_all_answered(nanjing_url):
    with serve_app(nanjing_url) as base:
        seen = _burst(base)
    assert seen == Counter({200: CLIENTS * ROUNDS}), seen
