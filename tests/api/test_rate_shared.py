"""Rate limits hold across the worker processes of one home: their counters are the home's
(``rates.table``), not each process's, so N workers do not give a client N times its limit.
A service of one process counts in its memory, alike, and writes no file."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from api.guard import Limiter
from api.rate_store import RATES_FILE, ProcessCounters, SharedCounters
from custody.demo import Season
from custody.errors import RateLimitError, StorageError
from tests.api.helpers import as_person, seal_event
from tests.conftest import PASS


def _app(season: Season, *, shared: bool = True, **rates: str) -> TestClient:
    """The app of one worker of ``serve --workers N`` (``shared``), or of a lone ``serve``."""
    settings = Settings(
        home=season.home.path,
        log_passphrase=PASS,
        clock=lambda: season.now,
        shared_rates=shared,
        **rates,
    )
    return TestClient(create_app(settings))


def test_two_apps_on_one_home_share_the_address_limit(season: Season) -> None:
    one = _app(season, rate_per_address="5/minute")
    two = _app(season, rate_per_address="5/minute")
    codes = [(one if n % 2 else two).get("/healthz").status_code for n in range(5)]
    assert codes == [200] * 5
    for c in (one, two):  # the sixth request, on either, is over: together they hit 5
        r = c.get("/healthz")
        assert (r.status_code, r.json()["error"]) == (429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
    assert (season.home.path / RATES_FILE).exists()


def test_two_apps_on_one_home_share_a_keys_limit(season: Season) -> None:
    one = _app(season, rate_per_key="4/minute")
    two = _app(season, rate_per_key="4/minute")
    # A login counts once against the key, each logged-in read once more.
    headers = as_person(one, season, "auditor-chu")
    assert one.get("/v1/access/checkpoint", headers=headers).status_code == 200
    assert two.get("/v1/access/checkpoint", headers=headers).status_code == 200
    assert one.get("/v1/access/checkpoint", headers=headers).status_code == 200
    r = two.get("/v1/access/checkpoint", headers=headers)
    assert (r.status_code, r.json()["error"]) == (429, "rate_limited")
    other = as_person(two, season, "secrecy-chen")  # another key is still answered
    assert two.get("/v1/access/checkpoint", headers=other).status_code == 200


@pytest.mark.parametrize("shared", [True, False])
def test_a_key_s_events_count_once_appended_and_its_next_is_refused_unread(
    season: Season, shared: bool
) -> None:
    """Through the API: each event a key newly appends counts once against it; a replay of an
    appended statement (anyone may hold one) counts for no one; once the key is at its rate,
    its next event is refused before any work, and the log is as it was."""
    client = _app(season, shared=shared, rate_per_key="2/minute")
    first = seal_event(season, "PK-1")
    assert client.post("/v1/events", content=first.to_bytes()).status_code == 201
    for _ in range(3):
        assert client.post("/v1/events", content=first.to_bytes()).status_code == 200
    assert (
        client.post("/v1/events", content=seal_event(season, "PK-2").to_bytes()).status_code == 201
    )
    size = client.get("/v1/checkpoint").text.split("\n")[1]
    r = client.post("/v1/events", content=seal_event(season, "PK-3").to_bytes())
    assert (r.status_code, r.json()["error"]) == (429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert client.get("/v1/checkpoint").text.split("\n")[1] == size
    # a batch naming the key is refused whole, before any of it is judged
    r = client.post("/v1/events", content=b"[" + seal_event(season, "PK-4").to_bytes() + b"]")
    assert (r.status_code, r.json()["error"]) == (429, "rate_limited")


def _hammer(path: str, hits: int, allowed: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = Limiter(SharedCounters(path))
    ok = 0
    for _ in range(hits):
        try:
            limiter.hit("100/hour", "address", "203.0.113.9")
            ok += 1
        except RateLimitError:
            pass
    allowed.put(ok)


def test_processes_hitting_at_once_take_exactly_the_limit(tmp_path: Path) -> None:
    """Four processes, 60 hits each, at once, on one store: exactly 100 are let through."""
    path = str(tmp_path / RATES_FILE)
    SharedCounters(path)  # created once, as the service's start does
    ctx = multiprocessing.get_context("fork")  # each child opens its own connection
    allowed = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(path, 60, allowed)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sum(allowed.get(timeout=5) for _ in procs) == 100


def test_a_window_ends_and_a_broken_store_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("api.rate_store.time.time", lambda: clock[0])
    store = SharedCounters(tmp_path / RATES_FILE)
    limiter = Limiter(store)
    limiter.hit("1/second", "key", "k")
    with pytest.raises(RateLimitError) as over:
        limiter.hit("1/second", "key", "k")
    assert over.value.retry_after == 1  # type: ignore[attr-defined]
    clock[0] += 5  # the window ended a while ago: the next hit starts a new one
    limiter.hit("1/second", "key", "k")
    store.close()
    with pytest.raises(StorageError):  # closed: nothing is counted
        limiter.hit("1/second", "key", "k")
    (tmp_path / RATES_FILE).write_bytes(b"SQLite format 3\x00" + bytes(100))  # not a table
    with pytest.raises(StorageError, match="could not be opened"):
        SharedCounters(tmp_path / RATES_FILE)
    (tmp_path / RATES_FILE).unlink()
    (tmp_path / RATES_FILE).mkdir()  # the store's file is now a folder: nothing opens it
    with pytest.raises(StorageError):
        Limiter(SharedCounters(tmp_path / RATES_FILE)).hit("1/second", "key", "k")


def test_the_table_holds_no_one_in_clear_and_frees_ended_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots hold keyed digests, not addresses or key ids; a window that ended gives its slot
    to the next client, searches that walk far rebuild the table with the live windows, and
    a table whose every slot is live refuses the hit (503), counting nothing."""
    from api import rate_store

    monkeypatch.setattr(rate_store, "SLOTS", 64)
    monkeypatch.setattr(rate_store, "REBUILD_AFTER", 8)
    clock = [1000.0]
    monkeypatch.setattr("api.rate_store.time.time", lambda: clock[0])
    path = tmp_path / RATES_FILE
    store = SharedCounters(path)
    assert path.stat().st_size == rate_store.HEADER + 64 * rate_store.SLOT
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    limiter = Limiter(store)
    addresses = [f"203.0.113.{n}" for n in range(64)]
    for address in addresses:
        limiter.hit("2/minute", "address", address)
    limiter.hit("2/minute", "address", addresses[7])
    assert b"203.0.113" not in path.read_bytes()
    with pytest.raises(StorageError, match="is full") as full:
        limiter.hit("2/minute", "address", "198.51.100.1")
    assert full.value.http_status == 503
    key = limiter._item("2/minute").key_for
    assert store.get_many([key("address", a) for a in addresses[6:9]]) == [1, 2, 1]
    rebuilds = []
    rebuild = store._rebuild
    monkeypatch.setattr(store, "_rebuild", lambda *a: rebuilds.append(1) or rebuild(*a))
    clock[0] += 30  # within the windows: a newcomer still finds no slot
    for n in range(20):  # refused after a short search: the whole table is not walked again
        with pytest.raises(StorageError):
            limiter.hit("2/minute", "address", f"198.51.100.{n}")
    assert rebuilds == []
    clock[0] += 31  # every window has ended: their slots are free again
    monkeypatch.setattr(rate_store, "SWEEP_EVERY", 1)  # and swept at the next hit
    used = {bytes(rate_store._FREE), bytes(rate_store._GONE)}

    def digests() -> int:
        table = path.read_bytes()[rate_store.HEADER :]
        slots = [table[i : i + 16] for i in range(0, len(table), rate_store.SLOT)]
        return sum(1 for d in slots if d not in used)

    assert digests() == 64
    limiter.hit("2/minute", "address", addresses[63])  # its own slot: found, not rebuilt
    assert digests() == 1  # the ended windows' digests are gone from the file
    limiter.hit("2/minute", "address", "198.51.100.1")
    for address in addresses[:40]:  # new windows, over slots freed and rebuilt
        limiter.hit("2/minute", "address", address)
    assert store.get_many([key("address", a) for a in (*addresses[:2], "198.51.100.1")]) == [
        1,
        1,
        1,
    ]
    assert store.get_many([key("address", addresses[50])]) == [0]  # its window ended
    limiter.hit("2/minute", "address", addresses[0])
    with pytest.raises(RateLimitError):
        limiter.hit("2/minute", "address", addresses[0])
    assert store.reset() == 42


def test_a_lone_service_counts_in_memory_and_writes_no_file(season: Season) -> None:
    one = _app(season, shared=False, rate_per_address="5/minute")
    assert [one.get("/healthz").status_code for _ in range(5)] == [200] * 5
    r = one.get("/healthz")
    assert (r.status_code, r.json()["error"]) == (429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert not (season.home.path / RATES_FILE).exists()
    other = _app(season, shared=False, rate_per_address="5/minute")  # another process
    assert other.get("/healthz").status_code == 200


def test_the_memory_store_counts_windows_as_the_file_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("api.rate_store.time.time", lambda: clock[0])
    memory = ProcessCounters()
    limiter = Limiter(memory)
    limiter.hit("2/second", "key", "k")
    limiter.hit("2/second", "key", "k")
    with pytest.raises(RateLimitError) as over:
        limiter.hit("2/second", "key", "k")
    assert over.value.retry_after == 1  # type: ignore[attr-defined]
    limiter.hit("2/second", "key", "other")  # another key has its own window
    clock[0] += 1.0  # the window has ended: the next hit starts a new one
    limiter.hit("2/second", "key", "k")
    limiter.hit("2/second", "key", "k")
    with pytest.raises(RateLimitError):
        limiter.hit("2/second", "key", "k")
    clock[0] += 5.0
    monkeypatch.setattr("api.rate_store.PURGE_EVERY", 1)
    limiter.hit("2/second", "key", "k")  # ended windows are dropped as it goes
    assert len(memory._windows) == 1
    assert memory.get_expiry("absent") == clock[0]
    assert memory.reset() == 1


def test_writers_take_turns_on_the_file_lock_beside_the_store(tmp_path: Path) -> None:
    """A hit waits for the kernel's lock on the table file, and goes on as soon as the holder
    lets go."""
    import fcntl
    import os
    import threading

    path = tmp_path / RATES_FILE
    limiter = Limiter(SharedCounters(path))
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's turn
    done = threading.Event()

    def hit() -> None:
        limiter.hit("5/minute", "key", "k")
        done.set()

    worker = threading.Thread(target=hit, daemon=True)
    worker.start()
    assert not done.wait(0.3)  # waiting for its turn
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    assert done.wait(5)
    assert limiter.storage.get_many([limiter._item("5/minute").key_for("key", "k")]) == [1]


def test_clearing_the_store_takes_its_turn_too(tmp_path: Path) -> None:
    """``clear`` and ``reset`` write as hits do: each waits for the file lock another process
    holds, then counts are as they should be."""
    import fcntl
    import os
    import threading

    path = tmp_path / RATES_FILE
    store = SharedCounters(path)
    limiter = Limiter(store)
    limiter.hit("5/minute", "key", "k")
    limiter.hit("5/minute", "key", "j")
    key = limiter._item("5/minute").key_for

    def clear_k() -> None:
        store.clear(key("key", "k"))

    for clearing, left in ((clear_k, [0, 1]), (store.reset, [0, 0])):
        fd = os.open(path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's turn
        done = threading.Event()

        def run(clearing: Callable[[], object] = clearing, done: threading.Event = done) -> None:
            clearing()
            done.set()

        threading.Thread(target=run, daemon=True).start()
        assert not done.wait(0.3)  # waiting for its turn
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        assert done.wait(5)
        assert store.get_many([key("key", "k"), key("key", "j")]) == left


@pytest.mark.parametrize("shared", [True, False])
def test_keys_are_checked_before_the_work_and_counted_only_after_it(
    tmp_path: Path, shared: bool
) -> None:
    """A signed request is refused if one of its keys is at its rate, counting nothing; the
    keys whose signatures verified on work done are counted after it, in one turn, and
    never refused there (the work is durable)."""
    store = SharedCounters(tmp_path / RATES_FILE) if shared else ProcessCounters()
    limiter = Limiter(store)
    key = limiter._item("3/minute").key_for
    for _ in range(50):  # checks alone (a stranger naming the keys) spend nothing
        limiter.check_each("3/minute", "key", ["a", "b"])
    assert store.get_many([key("key", "a"), key("key", "b")]) == [0, 0]
    limiter.count_each("3/minute", "key", ["a", "b"])
    limiter.count_each("3/minute", "key", ["a"])
    limiter.check_each("3/minute", "key", ["a", "b"])  # a: 2, b: 1
    limiter.count_each("3/minute", "key", ["a", "b"])  # a: 3, b: 2
    with pytest.raises(RateLimitError) as over:
        limiter.check_each("3/minute", "key", ["b", "a"])
    assert "3/minute" in str(over.value)
    limiter.check_each("3/minute", "key", ["b"])  # b alone is under
    limiter.count_each("3/minute", "key", ["a", "b"])  # over now: counted, not refused
    assert store.get_many([key("key", "a"), key("key", "b")]) == [4, 3]
    limiter.check_each("3/minute", "key", [])  # no keys: nothing read, nothing refused
    limiter.count_each("3/minute", "key", [])
    with pytest.raises(RateLimitError):
        limiter.check_each("3/minute", "key", ["b"])


def test_a_full_table_answers_503_and_the_next_window_serves_again(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the service: when every slot of the shared table holds a live window, a new
    client is answered 503 ``storage`` with ``Retry-After`` (not let through uncounted);
    once those windows end, it is served."""
    from api import rate_store

    monkeypatch.setattr(rate_store, "SLOTS", 64)
    clock = [1000.0]
    monkeypatch.setattr("api.rate_store.time.time", lambda: clock[0])
    client = _app(season, rate_per_address="5/minute")
    store = client.app.state.limiter.storage  # type: ignore[attr-defined]
    others = Limiter(store)
    for n in range(64):  # 64 other clients, each in its window
        others.hit("5/minute", "address", f"198.51.100.{n}")
    r = client.get("/healthz")
    assert (r.status_code, r.json()["error"]) == (503, "storage")
    assert "is full" in r.json()["message"] and "已满" in r.json()["message_zh"]
    assert int(r.headers["retry-after"]) >= 1
    clock[0] += 61  # their windows have ended
    assert client.get("/healthz").status_code == 200


def test_a_read_takes_no_turn_a_count_waits_for_its_turn(tmp_path: Path) -> None:
    """The check before a signed request's work reads the table while another process holds
    it (its count stays exact: it waits for its turn)."""
    path = tmp_path / RATES_FILE
    store = SharedCounters(path)
    store.incr("k", 60)
    holder = os.open(path, os.O_RDWR)  # another open file: another process's turn, to flock
    fcntl.flock(holder, fcntl.LOCK_EX)
    counted = threading.Event()
    try:
        read: list[list[int]] = []
        reader = threading.Thread(target=lambda: read.append(store.get_many(["k", "other"])))
        reader.start()
        reader.join(5)
        assert read == [[1, 0]]  # answered while the turn is held
        waiting = threading.Thread(target=lambda: (store.incr("k", 60), counted.set()))
        waiting.start()
        assert not counted.wait(0.3)  # the count waits for the holder
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    waiting.join(10)
    assert counted.is_set() and store.get_many(["k"]) == [2]
    store.close()
