"""One log writer for the processes of `custody serve --workers N`.

Why: N server processes committing their own single submissions contend for the database's
write lock, and each pays a whole transaction (head row, tree nodes, a signed checkpoint, the
fsync) for the few events it gathered; measured, two processes appended fewer single
submissions than one. A process is also bound to one core by its interpreter lock, so one
process cannot serve the HTTP side and the appends of two cores' worth of clients.

Rules:
- The writer is the `custody serve` process itself (uvicorn's supervisor, otherwise idle). It
  holds the log key and one group commit (``custody.group_commit``); the workers send it each
  single submission (``POST /v1/events`` with one envelope) over a Unix socket in a private
  directory (mode 0700, removed when the service stops) and answer their client with what it
  returns. Every other write (a list of envelopes, cosignatures, incidents, enrolments) stays
  in the worker and appends through the database's lock, as before.
- A worker verifies the envelope's signatures (its process has a core of its own; the
  writer's interpreter lock is kept for the rules and the commit) and sends which keys signed
  it with the envelope's bytes. The writer takes that one fact from its own child processes,
  which hold the same keys it does; everything else it judges as it would any submission:
  it parses the envelope, and the roles, certificates, revocations, rules and the incident
  desk's gate are checked with its own trust store (reloaded before each batch when someone was
  enrolled or revoked) at its own clock. A check it cannot use (a signature by a key the worker
  did not know yet, or one that does not add up) it redoes itself.
- Frames both ways: a 4-byte big-endian length, a 4-byte request number, then the body. A
  worker's body: one byte, the number of keys that signed (255: not checked), each key id as
  one length byte and its ASCII; one byte, the number of signatures that matched no key, and
  their positions, one byte each; then the envelope: the form the log's entry row stores it in
  (``custody.store.leaves.envelope_parts``: raw bytes, the payload deflated; its first byte
  0x01 or 0x02) when it fits that form, else its JSON as the client sent it. The worker parsed
  the envelope and deflated its payload on its own core; the writer reads the parts back
  (no JSON, no base64) and stores those very bytes. The writer's body is a pickle of
  ``("ok", Receipt)`` or ``("refused", CustodyError)``, written only by the writer and read
  only by the processes it started (the socket's directory admits no other user). Answers come
  in commit order, not in request order: the request number pairs them.
- Frames travel together: a worker writes the frames of one turn of its event loop in one
  write, and the writer a batch's answers to each worker in one write once all are given
  (``GroupCommit.after_answers``). Measured, a frame alone a system call each way cost the
  writer's interpreter lock more than the commit's own statements (docs/benchmarks.md,
  session 15).
- A worker whose link breaks (the writer stopped or the socket closed) answers each submission
  in flight with a storage error (503) and connects again for the next one. Such a submission
  may have been appended: sent again, it gets its receipt (a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
import shutil
import socket
import struct
import tempfile
import threading
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.dsse import Envelope, SignatureCheck, parse_envelope
from custody.errors import N_, CustodyError, FormatError, Phrase, StorageError
from custody.group_commit import answering
from custody.log import Receipt
from custody.parallel import signature_check
from custody.readiness import Check
from custody.store.leaves import PARTS_DEFLATED, PARTS_RAW, envelope_from_parts, envelope_parts

if TYPE_CHECKING:
    from api.backend import Backend

HEADER = struct.Struct(">II")  # body length, request number
SOCKET_NAME = "log.sock"


class LogWriterServer:
    """The writer's side: accepts the workers' connections and feeds their envelopes to the
    backend's group commit (one thread per connection reads; answers are sent as batches
    commit)."""

    def __init__(self, backend: Backend) -> None:
        if backend.committer is None:
            raise StorageError(N_("the log writer needs the log key"))
        self.backend = backend
        self.max_body = backend.settings.max_envelope + 4096  # the envelope and the check
        self.directory = Path(tempfile.mkdtemp(prefix="custody-writer-"))  # mode 0700
        self.path = self.directory / SOCKET_NAME
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._connections: set[socket.socket] = set()
        self._guard = threading.Lock()
        # answers given while a batch is answered, by connection: sent together after it
        self._outgoing: dict[socket.socket, tuple[threading.Lock, list[bytes]]] = {}
        backend.committer.after_answers.append(self._send_answers)
        self._accepting = threading.Thread(
            target=self._accept, name="custody-log-writer", daemon=True
        )
        self._accepting.start()

    def close(self) -> None:
        """Stop taking connections and drop the open ones (their workers see a broken link);
        the group commit itself is closed with the backend."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(timeout=5)
        with self._guard:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._guard:
                self._connections.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="custody-log-writer-link", daemon=True
            ).start()

    def _send_answers(self) -> None:
        """After a batch is answered: each connection's answers in one write."""
        with self._guard:
            outgoing = list(self._outgoing.items())
        for conn, (sending, out) in outgoing:
            with sending:
                if out:
                    data = b"".join(out)
                    out.clear()
                    with contextlib.suppress(OSError):
                        conn.sendall(data)

    def _serve(self, conn: socket.socket) -> None:
        sending = threading.Lock()
        out: list[bytes] = []
        with self._guard:
            self._outgoing[conn] = (sending, out)

        def answer(number: int, done: Future[Receipt]) -> None:
            try:
                value: tuple[str, object] = ("ok", done.result())
            except CustodyError as e:
                value = ("refused", e)
            try:
                data = pickle.dumps(value)
            except Exception as e:  # noqa: BLE001 - an unpicklable refusal still gets an answer
                data = pickle.dumps(("refused", _unsendable(e)))
            frame = HEADER.pack(len(data), number) + data
            with sending:
                if answering():  # a batch's answers: sent together once all are given
                    out.append(frame)
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(frame)

        try:
            with conn, conn.makefile("rb") as stream:
                while len(head := stream.read(HEADER.size)) == HEADER.size:
                    size, number = HEADER.unpack(head)
                    if size > self.max_body:
                        return  # not from our worker (it checks the size first): hang up
                    body = stream.read(size)
                    if len(body) != size:
                        return
                    self._submit(body).add_done_callback(partial(answer, number))
        except OSError:
            return
        finally:
            with self._guard:
                self._connections.discard(conn)
                self._outgoing.pop(conn, None)

    def _submit(self, body: bytes) -> Future[Receipt]:
        try:
            signers, at = _read_signers(body)
            envelope, stored = _read_envelope(body[at:])
            assert self.backend.committer is not None
            checked = self._usable(envelope, signers)
            return self.backend.committer.submit(envelope, checked, stored)
        except CustodyError as e:
            refused: Future[Receipt] = Future()
            refused.set_exception(e)
            return refused

    def _usable(self, env: Envelope, signers: Signers | None) -> SignatureCheck | None:
        """The worker's check of ``env``, if it adds up and no signature it could not match
        is by a key this process knows (then the writer verifies them all itself)."""
        if signers is None:
            return None
        signed, unmatched = signers
        hints = [s.keyid for s in env.signatures]
        if (
            len(signed) + len(unmatched) != len(hints)
            or not set(signed) <= set(hints)
            or any(not 0 <= i < len(hints) for i in unmatched)
        ):
            return None
        known = self.backend.log.trust.signing_keys
        if any(hints[i] in known for i in unmatched):
            return None
        return signature_check(env, signers)  # as the log's own signature workers hand back


# A worker's check: the key ids that signed, and the positions of the signatures that matched
# no key it knows (``SignatureCheck``'s two facts, as ``custody.parallel``'s workers send them).
Signers = tuple[tuple[str, ...], tuple[int, ...]]
UNCHECKED = 255


def signers_frame(check: SignatureCheck | None) -> bytes:
    """The start of a worker's body: its check of the envelope (None: not checked)."""
    if (
        check is None
        or len(check.signed_by) >= UNCHECKED
        or len(check.unmatched) >= UNCHECKED
        or any(i > 255 for i in check.unmatched)
    ):
        return bytes([UNCHECKED])  # the writer checks it itself
    out = bytearray([len(check.signed_by)])
    for keyid in sorted(check.signed_by):
        raw = keyid.encode("ascii")
        if len(raw) > 255:
            return bytes([UNCHECKED])
        out += bytes([len(raw)]) + raw
    out.append(len(check.unmatched))
    out += bytes(check.unmatched)
    return bytes(out)


def _read_signers(body: bytes) -> tuple[Signers | None, int]:
    """A worker's check and where the envelope starts (a check that does not parse is not
    used: the envelope after it cannot be found either, and the frame is refused)."""
    try:
        count, at = body[0], 1
        if count == UNCHECKED:
            return None, 1
        signed = []
        for _ in range(count):
            size = body[at]
            signed.append(body[at + 1 : at + 1 + size].decode("ascii"))
            at += 1 + size
        n = body[at]
        unmatched = tuple(body[at + 1 : at + 1 + n])
        at += 1 + n
        if at > len(body):
            raise IndexError(at)
    except (IndexError, UnicodeDecodeError) as e:
        raise FormatError(N_("the log writer got a frame it cannot read")) from e
    return (tuple(signed), unmatched), at


def envelope_frame(envelope: Envelope, sent: bytes) -> bytes:
    """The rest of a worker's body: ``envelope`` (parsed from ``sent``, the client's JSON) in
    the form the log stores it, or ``sent`` when it does not fit that form."""
    parts = envelope_parts(envelope)
    return sent if parts is None else parts


def _read_envelope(data: bytes) -> tuple[Envelope, bytes | None]:
    """The envelope a worker sent, and its stored form when it came in that form."""
    if data[:1] in (bytes([PARTS_RAW]), bytes([PARTS_DEFLATED])):  # never a JSON text's start
        envelope = envelope_from_parts(data)
        if envelope is None:
            raise FormatError(N_("the log writer got a frame it cannot read"))
        return envelope, data
    return parse_envelope(data, what=Phrase("event envelope")), None


def _unsendable(e: Exception) -> StorageError:
    return StorageError(
        N_("the log writer could not send its answer: {name}"), name=type(e).__name__
    )


class WriterLink:
    """A worker's side: sends one envelope, awaits its receipt or refusal (connects lazily,
    on the worker's event loop, and again after a broken link)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._numbers = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Receipt]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # frames of this turn of the event loop, written together by ``_flush`` (one system
        # call for the requests the loop took together), and the connection they go to
        self._out: list[bytes] = []
        self._out_to: asyncio.StreamWriter | None = None

    async def submit(
        self, envelope: Envelope, sent: bytes, checked: SignatureCheck | None
    ) -> Receipt:
        """The receipt of ``envelope`` (parsed from ``sent``, its JSON bytes) once it is
        durable; its refusal is raised as the writer raised it. The route checked its size
        (``max_envelope``); ``checked``: this process's check of its signatures, if it made
        one."""
        writer = await self._connected()
        number = next(self._numbers) & 0xFFFFFFFF
        answer: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._pending[number] = answer
        body = signers_frame(checked) + envelope_frame(envelope, sent)
        try:
            self._send(writer, HEADER.pack(len(body), number) + body)
            return await answer
        finally:
            self._pending.pop(number, None)

    def _send(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        """Queue ``frame`` for ``writer``; the queue is written at the end of this turn of
        the event loop (a frame for another connection first writes what was queued for the
        one before)."""
        if self._out_to is not writer:
            self._flush()
            self._out_to = writer
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        out, self._out = self._out, []
        writer = self._out_to
        if not out or writer is None:
            return
        try:
            # a connection that closed meanwhile drops them: its reader has answered, or
            # answers, every pending submission with the broken link's storage error
            writer.write(b"".join(out))
        except (OSError, RuntimeError):
            writer.close()  # its reader ends and answers them (never a submission left waiting)

    def probe(self) -> Check:
        """``/readyz``'s check: does the writer take connections? (A worker whose writer is
        gone answers every submission 503: it must not be sent them.)"""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            try:
                s.connect(str(self.path))
            except OSError as e:
                return Check(
                    False, f"the log writer (the serving process) does not answer: {e}", "storage"
                )
        return Check(True, "the log writer (the serving process) takes submissions")

    async def _connected(self) -> asyncio.StreamWriter:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a link belongs to one event loop (a worker has one)
            self._loop, self._writer, self._connecting = loop, None, asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path))
            except OSError as e:
                raise StorageError(
                    N_("the log writer of this service is not reachable: {name}"),
                    hint=N_("the service is stopping or restarting; submit again shortly"),
                    name=type(e).__name__,
                ) from e
            self._writer = writer
            self._reading = asyncio.create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size, number = HEADER.unpack(await reader.readexactly(HEADER.size))
                kind, value = pickle.loads(await reader.readexactly(size))  # noqa: S301 - our writer's
                answer = self._pending.pop(number, None)
                if answer is None or answer.done():
                    continue  # its client went away meanwhile
                if kind == "ok":
                    answer.set_result(value)
                else:
                    answer.set_exception(value)
        except (OSError, asyncio.IncompleteReadError, pickle.UnpicklingError, ValueError):
            pass  # the writer stopped or hung up: what is in flight is answered below
        if self._writer is writer:
            self._writer = None
        writer.close()
        for number, answer in list(self._pending.items()):
            if not answer.done():
                answer.set_exception(
                    StorageError(
                        N_(
                            "the link to the log writer broke before the answer: the event "
                            "may have been appended"
                        ),
                        hint=N_("submit it again: if it was appended, you get its receipt"),
                    )
                )
            self._pending.pop(number, None)
