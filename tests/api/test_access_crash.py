"""`custody serve` SIGKILLed right after answering reads loses none of their access records.

Under the default ``--access-flush full`` every answer of a read of personal data waits until
its record is committed (records of concurrent reads share one commit). Here four clients
read packages as fast as the service answers; the server is killed with SIGKILL (no chance to
flush or clean up) the moment the answers reach a target, while reads are still in flight.
Afterwards every answered read has its record, and the access log's chain and checkpoint
verify. A service that answered before its record was durable (``--access-flush queued``: the
last 50 ms of reads wait in a queue) fails this test at once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx

from custody.access_log import AccessLog, verify_access
from custody.demo import Season, seal_events
from tests.api.helpers import free_port, login_token
from tests.api.test_kill_loop import _start

PACKAGES = [f"PK-{n}" for n in range(40)]
CLIENTS = 4
ANSWERS = 150  # answered reads to wait for before the kill


def test_sigkill_after_answered_reads_loses_none_of_their_records(any_season: Season) -> None:
    season = any_season
    port = free_port()
    proc = _start(season, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            for body in seal_events(season, PACKAGES):
                assert c.post("/v1/events", content=body).status_code == 201
            token = login_token(c, season, "courier-sun")  # type: ignore[arg-type]
        answered: Counter[str] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def client(k: int) -> None:
            headers = {"authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as own:
                n = k
                while not stop.is_set():
                    package = PACKAGES[n % len(PACKAGES)]
                    try:
                        r = own.get(f"/v1/packages/{package}")
                    except httpx.TransportError:
                        return  # the server died under this read: it was not answered
                    assert r.status_code == 200, r.text
                    with lock:
                        answered[package] += 1
                    n += CLIENTS

        workers = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 120
        while sum(answered.values()) < ANSWERS and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for w in workers:
            w.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert sum(answered.values()) >= ANSWERS
    season.home.engine.dispose()  # the killed server's connections are gone
    access = AccessLog(season.home.engine, season.authority, season.log().log_key)
    for package, reads in answered.items():
        recorded = access.who_read(obj=f"package:{package}", limit=100_000)
        assert len(recorded) >= reads, f"{package}: {reads} answered, {len(recorded)} recorded"
        assert {e.who for e in recorded} == {"courier-sun"}
    note = access.checkpoint(season.now)
    assert verify_access(season.authority, note, access.leaves()) == []
