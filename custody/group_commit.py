"""Group commit: single submissions made at the same time share one append transaction.

Every accepted event must be durable before it is answered, and a commit costs a transaction
(the head row's lock, the tree's nodes, one signed checkpoint, the fsync) whatever its size. A
service that commits each request alone is bound by that fixed cost; one writer thread that
gathers whatever arrived while the previous transaction was committing, and commits it as one
``append_prepared`` batch, pays it once for all of them.

Rules:
- Each submission is parsed, its signatures verified and its row form made (the deflated
  payload) in the caller's thread (pynacl and zlib release the interpreter's lock, so the
  callers' work runs on every core); only the rules and the commit run on the writer thread.
- A submission is answered only once the transaction holding it has committed: its receipt,
  its own refusal, or the storage error that failed the whole transaction.
- Within a batch each envelope is judged alone and in arrival order, exactly as in
  ``submit_many``: a refusal refuses that submission only, and the same statement sent twice
  is appended once (the later sender gets the duplicate receipt).
- The batch's receive time is read from the service's clock when the batch is taken, and the
  trust store is reloaded then (``refresh``) if someone was enrolled or revoked meanwhile.
- The writer takes a batch once a submission is queued and ``WINDOW`` has passed (or the
  batch is full): a lone submission waits that long, and under load each transaction carries
  what arrived meanwhile. Its cost hardly grows with its size (on a 2-core machine, 15 and
  25 submissions both about 7 ms of the writer's wall time): with 50 clients, gathering for a
  whole window of 2-4 ms answered 4-7% more submissions than taking the queue as soon as one
  more arrived; once ``api.writer_link`` wrote its frames together, windows of 1, 2 and 4 ms
  answered alike (docs/benchmarks.md, session 15).
- Once a batch has committed, a second thread records its checkpoint in the signed-head file
  (two fsyncs) and only then answers its submissions, while the writer thread goes on with the
  next batch: the file's fsyncs are off the writer's path, and no receipt is handed out
  before the checkpoint it carries is kept outside the database. Batches are answered in
  commit order; the writer runs at most ``AHEAD`` committed batches ahead of the answers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from crypto.dsse import Envelope, SignatureCheck
from custody.errors import N_, CustodyError, StorageError
from custody.log import AppendResult, CustodyLog, Prepared, Receipt, Rejected, prepare

_log = logging.getLogger("custody.log")

WINDOW = 0.002  # seconds the writer gathers submissions once one is queued
MAX_BATCH = 1000
AHEAD = 2  # committed batches waiting for their checkpoint's record, at most


@dataclass
class _Pending:
    envelope: Envelope
    prepared: Prepared | None
    refusal: CustodyError | None
    answer: Future[Receipt]


class GroupCommit:
    """One writer thread committing concurrent single submissions together."""

    def __init__(
        self,
        log: CustodyLog,
        clock: Callable[[], datetime],
        *,
        window: float = WINDOW,
        max_batch: int = MAX_BATCH,
        refresh: Callable[[], object] | None = None,
    ) -> None:
        self.log = log
        self.clock = clock
        self.refresh = refresh  # run before each batch (the service reloads its trust store)
        self.window = window
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        # committed batches and what to answer them (``None``: the writer stopped)
        self._committed: queue.Queue[tuple[list[_Pending], AppendResult | CustodyError] | None]
        self._committed = queue.Queue(maxsize=AHEAD)
        # called once a batch's submissions are all answered, on the answering thread (a
        # caller that sends the answers on collects them while ``answering()`` and sends them
        # together then)
        self.after_answers: list[Callable[[], None]] = []
        self._answerer = threading.Thread(
            target=self._answer_committed, name="custody-group-answer", daemon=True
        )
        self._thread = threading.Thread(target=self._run, name="custody-group-commit", daemon=True)
        self._answerer.start()
        self._thread.start()

    def submit(
        self,
        env: Envelope,
        checked: SignatureCheck | None = None,
        stored: bytes | None = None,
    ) -> Future[Receipt]:
        """Check the envelope's signatures here (unless ``checked`` by another process of this
        service), then queue it for the next transaction. ``stored``: the entry row's form of
        ``env``, if that process made it.

        The future holds the receipt once the event is durable, or the refusal."""
        answer: Future[Receipt] = Future()
        try:
            prepared = prepare(env, self.log.trust, parts=True, checked=checked, stored=stored)
            item = _Pending(env, prepared, None, answer)
        except CustodyError as e:
            item = _Pending(env, None, e, answer)
        with self._cond:
            if self._closed:
                raise StorageError(N_("the service is stopping: the log takes no more events"))
            self._queue.append(item)
            self._cond.notify()
        return answer

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        self._answerer.join()

    def _take(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None  # closed and drained
            # let the submissions arriving now join: for the whole window, not only until the
            # next one (a transaction costs about as much for 15 events as for 25)
            end = time.monotonic() + self.window
            while (
                len(self._queue) < self.max_batch
                and not self._closed
                and (left := end - time.monotonic()) > 0
            ):
                self._cond.wait(left)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            return batch

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                try:
                    result: AppendResult | CustodyError = self._commit(batch)
                except Exception as e:  # noqa: BLE001 - answered, never left hanging
                    result = _failure(e)
                self._committed.put((batch, result))
        finally:
            self._committed.put(None)

    def _answer_committed(self) -> None:
        """Record each committed batch's checkpoint outside the database, then answer it."""
        while (done := self._committed.get()) is not None:
            batch, result = done
            if isinstance(result, AppendResult):
                try:
                    self.log.keep_signed(result)
                except Exception as e:  # noqa: BLE001 - answered, never left hanging
                    result = _failure(e)
            _ANSWERING.active = True
            try:
                if isinstance(result, CustodyError):
                    for item in batch:
                        item.answer.set_exception(result)
                else:
                    _answer(batch, result)
            finally:
                _ANSWERING.active = False
            for hook in self.after_answers:
                try:
                    hook()
                except Exception as e:  # noqa: BLE001 - the answers are given; the hook's fault is its own
                    _log.warning("a hook after a batch's answers failed: %s", type(e).__name__)

    def _commit(self, batch: list[_Pending]) -> AppendResult:
        if self.refresh is not None:
            self.refresh()
        prepared = [(i, it.prepared) for i, it in enumerate(batch) if it.prepared is not None]
        early = [
            Rejected(i, it.refusal, None, it.envelope)
            for i, it in enumerate(batch)
            if it.refusal is not None
        ]
        # the checkpoint is recorded by the answering thread (``_answer_committed``)
        return self.log.append_prepared(prepared, early, now=self.clock(), keep=False)


_ANSWERING = threading.local()


def answering() -> bool:
    """Whether this thread is answering a committed batch now (a future's callback runs
    there; ``GroupCommit.after_answers`` follow once the whole batch is answered)."""
    return bool(getattr(_ANSWERING, "active", False))


def _failure(e: Exception) -> CustodyError:
    """What a batch's submissions are answered when its append failed: the refusal, or a
    storage fault for anything else."""
    if isinstance(e, CustodyError):
        return e
    failure = StorageError(N_("the log could not append: {name}"), name=type(e).__name__)
    failure.__cause__ = e
    return failure


def _answer(batch: list[_Pending], result: AppendResult) -> None:
    """Hand each submission its receipt or its refusal (by its position in the batch)."""
    refused = {r.envelope_index: r.error for r in result.rejected}
    # receipts by statement id, in order: the accepted one first, then duplicates
    receipts: dict[str, list[Receipt]] = {}
    for receipt in result.receipts:
        receipts.setdefault(receipt.statement_id, []).append(receipt)
    for i, item in enumerate(batch):
        if i in refused:
            item.answer.set_exception(refused[i])
            continue
        assert item.prepared is not None
        mine = receipts.get(item.prepared.event.id)
        if not mine:  # pragma: no cover - every accepted envelope has a receipt
            item.answer.set_exception(StorageError(N_("the log returned no receipt")))
            continue
        item.answer.set_result(mine.pop(0) if len(mine) > 1 else mine[0])
