"""The one log writer of `serve --workers N` (api.writer_link) over a real Unix socket: receipts
and refusals come back as the writer gave them, a worker's signature check is used only when it
adds up, and a broken link answers what is in flight with a storage error, never a hang."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.backend import Backend, Settings
from api.writer_link import (
    HEADER,
    LogWriterServer,
    WriterLink,
    _read_envelope,
    _read_signers,
    envelope_frame,
    signers_frame,
)
from crypto.dsse import Envelope, Signature, SignatureCheck, verify_signatures
from custody.demo import Season
from custody.errors import FormatError, StorageError, ThresholdError, VerificationError
from custody.events import Kind
from custody.i18n import error_text
from custody.log import Receipt
from custody.store.leaves import PARTS_DEFLATED, envelope_parts
from tests.api.helpers import people_entries, seal_event, transfer_event
from tests.conftest import PASS

# sent as the JSON it came in (not an event: no stored form)
NOT_AN_EVENT = Envelope("text/plain", b"{}", (Signature("k", bytes(64)),))


def _settings(season: Season, writer_socket: Path | None = None) -> Settings:
    return Settings(
        home=season.home.path,
        log_passphrase=PASS,
        system_passphrase=PASS,
        clock=lambda: season.now,
        desk_every=0,
        writer_socket=writer_socket,
    )


@pytest.fixture
def writer(season: Season) -> Iterator[LogWriterServer]:
    backend = Backend(_settings(season))
    server = LogWriterServer(backend)
    try:
        yield server
    finally:
        server.close()
        backend.close()


def _check(season: Season, env: Envelope) -> SignatureCheck:
    return verify_signatures(env, season.log().trust.signing_keys)


def _send(link: WriterLink, *items: tuple[Envelope, SignatureCheck | None]) -> list[object]:
    """Submit all at once on one event loop; each answer is a receipt or the exception."""

    async def run() -> list[object]:
        return await asyncio.gather(
            *(link.submit(env, env.to_bytes(), check) for env, check in items),
            return_exceptions=True,
        )

    return asyncio.run(run())


def test_submissions_sent_together_get_their_own_receipts(
    season: Season, writer: LogWriterServer
) -> None:
    start = season.now
    envs = []
    for n in range(8):
        season.now = start  # all dated at the writer's clock
        envs.append(seal_event(season, f"PK-{n}"))
    link = WriterLink(writer.path)
    answers = _send(link, *((env, _check(season, env)) for env in envs))
    assert all(isinstance(a, Receipt) for a in answers), answers
    receipts = [a for a in answers if isinstance(a, Receipt)]
    indexes = sorted(r.index for r in receipts)
    assert indexes == list(range(indexes[0], indexes[0] + len(envs)))  # one order, no gap
    log = season.log()
    for env, receipt in zip(envs, receipts, strict=True):
        assert log.entry(receipt.index) == env  # durable where its receipt says
    again = _send(link, (envs[0], None))[0]  # unchecked: the writer verifies it itself
    assert isinstance(again, Receipt) and again.duplicate and again.index == receipts[0].index


def test_a_refusal_comes_back_as_the_writer_raised_it(
    season: Season, writer: LogWriterServer
) -> None:
    seal = seal_event(season, "PK-1")
    (sealed,) = _send(WriterLink(writer.path), (seal, _check(season, seal)))
    assert isinstance(sealed, Receipt)
    # the courier alone signs a handover that needs the printer's signature too
    alone = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun",
                           signers=["courier-sun"])  # fmt: skip
    (answer,) = _send(WriterLink(writer.path), (alone, _check(season, alone)))
    assert isinstance(answer, ThresholdError), answer
    library = season.log().submit_many([alone], now=season.now)
    assert library.rejected and type(library.rejected[0].error) is ThresholdError
    assert answer.template == library.rejected[0].error.template
    assert answer.params == library.rejected[0].error.params
    assert error_text(answer, "zh")[0] != answer.message  # rendered by the worker's reader


def test_a_check_that_does_not_add_up_is_redone_by_the_writer(
    season: Season, writer: LogWriterServer
) -> None:
    env = seal_event(season, "PK-1")
    forged = replace(env, signatures=(replace(env.signatures[0], sig=bytes(64)),))
    keyid = forged.signatures[0].keyid
    lies = [
        SignatureCheck(env.payload_type, env.payload, frozenset({"someone-else"}), ()),
        SignatureCheck(env.payload_type, env.payload, frozenset({keyid, "x"}), ()),
        SignatureCheck(env.payload_type, env.payload, frozenset(), (7,)),
    ]
    link = WriterLink(writer.path)
    for lie in lies:
        (answer,) = _send(link, (forged, lie))
        assert isinstance(answer, VerificationError), (lie, answer)
    assert people_entries(season) == 0  # (the desk may record the forgery: not the statement)


def test_a_signature_the_worker_could_not_match_is_checked_by_the_writer(
    season: Season, writer: LogWriterServer
) -> None:
    """A key enrolled after the worker last read the trust store: the worker reports the
    signature unmatched, the writer knows the key and verifies it itself."""
    env = seal_event(season, "PK-1")
    stale = SignatureCheck(env.payload_type, env.payload, frozenset(), (0,))
    (answer,) = _send(WriterLink(writer.path), (env, stale))
    assert isinstance(answer, Receipt) and not answer.duplicate


def test_the_worker_check_travels_exactly() -> None:
    check = SignatureCheck("t", b"p", frozenset({"b" * 64, "a" * 64}), (2, 5))
    frame = signers_frame(check) + b"{envelope}"
    signers, at = _read_signers(frame)
    assert signers == (("a" * 64, "b" * 64), (2, 5)) and frame[at:] == b"{envelope}"
    assert _read_signers(signers_frame(None) + b"{}") == (None, 1)
    with pytest.raises(FormatError):
        _read_signers(bytes([3, 64]) + b"a" * 10)  # cut short


def test_the_envelope_travels_in_the_form_the_log_stores(season: Season) -> None:
    """The worker sends the entry row's form (no JSON for the writer to parse, the payload
    deflated on the worker's core); an envelope that does not fit it goes as the client's JSON;
    a stored form that does not add up is refused, not guessed at."""
    env = seal_event(season, "PK-1")
    sent = env.to_bytes()
    frame = envelope_frame(env, sent)
    assert frame == envelope_parts(env) and frame[0] == PARTS_DEFLATED and len(frame) < len(sent)
    assert _read_envelope(frame) == (env, frame)
    odd = replace(env, signatures=(replace(env.signatures[0], keyid="NOT-HEX"),))
    assert envelope_frame(odd, odd.to_bytes()) == odd.to_bytes()
    assert _read_envelope(odd.to_bytes()) == (odd, None)
    with pytest.raises(FormatError, match="cannot read"):
        _read_envelope(frame[:-3])  # the deflated payload cut short


def test_no_writer_is_a_storage_error_not_a_hang(tmp_path: Path) -> None:
    link = WriterLink(tmp_path / "absent.sock")
    with pytest.raises(StorageError, match="not reachable"):
        asyncio.run(link.submit(NOT_AN_EVENT, b"{}", None))


def test_a_writer_that_hangs_up_answers_what_is_in_flight(tmp_path: Path) -> None:
    """The writer reads the frames, then its process goes away: every submission waiting on
    that link gets a storage error saying the event may have been appended."""
    path = tmp_path / "w.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    got = threading.Event()

    def writer() -> None:
        conn, _ = listener.accept()
        with conn:
            size, _number = HEADER.unpack(conn.recv(HEADER.size, socket.MSG_WAITALL))
            conn.recv(size, socket.MSG_WAITALL)
            got.set()
        listener.close()

    threading.Thread(target=writer, daemon=True).start()

    async def run() -> list[object]:
        link = WriterLink(path)
        return await asyncio.wait_for(
            asyncio.gather(link.submit(NOT_AN_EVENT, b"{}", None),
                           link.submit(NOT_AN_EVENT, b"{}", None),
                           return_exceptions=True),
            timeout=30,
        )  # fmt: skip

    answers = asyncio.run(run())
    assert got.is_set()
    assert all(isinstance(a, StorageError) for a in answers), answers
    assert all("may have been appended" in str(a) for a in answers)


def test_a_write_that_fails_is_answered_never_left_waiting(tmp_path: Path) -> None:
    """The frames of a turn go out in one write after it (``_flush``): if that write fails,
    the link is closed and every submission in it gets the broken link's storage error."""
    path = tmp_path / "w.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    accepted: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
    accepting.start()

    async def run() -> list[object]:
        link = WriterLink(path)
        writer = await link._connected()

        def broken(data: bytes) -> None:
            raise RuntimeError("the transport broke")

        writer.write = broken  # type: ignore[method-assign]
        return await asyncio.wait_for(
            asyncio.gather(link.submit(NOT_AN_EVENT, b"{}", None),
                           link.submit(NOT_AN_EVENT, b"{}", None), return_exceptions=True),
            timeout=30,
        )  # fmt: skip

    try:
        answers = asyncio.run(run())
        accepting.join(10)  # the link connected: its connection is taken before the close
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert accepted and all(isinstance(a, StorageError) for a in answers), answers
    assert all("may have been appended" in str(a) for a in answers)


def test_an_oversized_frame_is_hung_up_on(season: Season, writer: LogWriterServer) -> None:
    size = season.log().size()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(writer.path))
        s.sendall(HEADER.pack(writer.max_body + 1, 1))
        s.settimeout(10)
        assert s.recv(1) == b""  # closed, nothing appended
    assert season.log().size() == size


def test_the_socket_is_private_and_removed_at_close(season: Season) -> None:
    backend = Backend(_settings(season))
    server = LogWriterServer(backend)
    try:
        assert server.directory.stat().st_mode & 0o777 == 0o700
    finally:
        server.close()
        backend.close()
    assert not server.directory.exists()


def test_the_route_sends_to_the_writer_and_answers_as_one_process(
    season: Season, writer: LogWriterServer
) -> None:
    """POST /v1/events on an app whose single submissions go to the writer: a handover's
    signatures are verified on the event loop, an envelope with more than four in a thread,
    and one the worker refuses to check (a key that signed twice) is checked by the writer;
    the answers are those of the one-process service."""
    settings = _settings(season, writer.path)
    start = season.now
    seal = seal_event(season, "PK-1")
    body = json.loads(seal.payload)["body"]
    five = ["print-qian", "courier-sun", "courier-li", "custodian-zhou", "examiner-zheng"]

    def sealed(pkg: str, signers: list[str]) -> Envelope:
        season.now = start
        return season.event(Kind.SEAL, [pkg], actors={"sealer": "print-qian"},
                            signers=signers, body=body, prevs={pkg: None})  # fmt: skip

    many, twice = sealed("PK-2", five), sealed("PK-3", ["print-qian", "print-qian"])
    with TestClient(create_app(settings)) as c:
        assert c.app.state.backend.committer is None  # nothing is committed in this process
        answers = [c.post("/v1/events", content=e.to_bytes()) for e in (seal, seal, many, twice)]
    assert [a.status_code for a in answers] == [201, 200, 201, 422], [a.text for a in answers]
    assert answers[1].json()["duplicate"] is True
    assert answers[3].json()["error"] == "duplicate_signature"
    log = season.log()
    assert log.entry(answers[2].json()["index"]) == many  # all five signatures kept


def test_readyz_fails_when_the_writer_is_gone(season: Season) -> None:
    """A worker whose writer stopped would answer every submission 503: its /readyz says so,
    so that a balancer stops sending it appends."""
    backend = Backend(_settings(season))
    server = LogWriterServer(backend)
    try:
        with TestClient(create_app(_settings(season, server.path))) as c:
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["writer"]["ok"] is True
            server.close()
            gone = c.get("/readyz")
            assert gone.status_code == 503
            assert gone.json()["checks"]["writer"] == {
                "ok": False,
                "detail": gone.json()["checks"]["writer"]["detail"],
                "error": "storage",
            }
            assert "does not answer" in gone.json()["checks"]["writer"]["detail"]
            refused = c.post("/v1/events", content=seal_event(season, "PK-9").to_bytes())
            assert refused.status_code == 503 and refused.json()["error"] == "storage"
    finally:
        server.close()
        backend.close()
