"""Group commit on a real log: concurrent submissions each answered alone, once durable; a failed
transaction answers every submission in it with the storage error; closing drains the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import text

from crypto.dsse import Envelope
from custody.demo import Season
from custody.errors import StorageError, ThresholdError
from custody.events import Kind
from custody.group_commit import GroupCommit, answering
from custody.log import Receipt
from tests.custody.test_log import SEALS, seal

PACKAGES = [f"PK-{n}" for n in range(30)]


def _until(condition: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _dispatch(season: Season, pkg: str, signers: list[str]) -> Envelope:
    return season.event(
        Kind.DISPATCH,
        [pkg],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=signers,
        body={"seals": SEALS},
        at=season.now,
    )


def _sealed(season: Season) -> list[Envelope]:
    for pkg in PACKAGES:
        seal(season, pkg)
    return [_dispatch(season, pkg, ["print-qian", "courier-sun"]) for pkg in PACKAGES]


def test_concurrent_submissions_are_each_answered_with_their_own_receipt(season: Season) -> None:
    envs = _sealed(season)
    log = season.log()
    committer = GroupCommit(log, lambda: season.now)
    start = threading.Barrier(len(envs))

    def submit(env: Envelope) -> Receipt:
        start.wait()  # all at once: they queue while a transaction commits
        return committer.submit(env).result(timeout=60)

    try:
        with ThreadPoolExecutor(len(envs)) as pool:
            receipts = list(pool.map(submit, envs))
    finally:
        committer.close()
    assert len({r.index for r in receipts}) == len(envs)
    for env, receipt in zip(envs, receipts, strict=True):
        assert log.entry(receipt.index) == env  # durable, where the receipt says
        assert receipt.checkpoint  # signed for a size that holds it
    assert all(log.package_state(p).holder == "courier-sun" for p in PACKAGES)


def test_after_a_batch_is_answered_its_hooks_run_with_every_answer_given(season: Season) -> None:
    """What a caller sending the answers on relies on (``api.writer_link`` writes a batch's
    answers together): a future's callback runs while ``answering()``, and the hooks after the
    whole batch is answered, on the same thread."""
    envs = _sealed(season)
    committer = GroupCommit(season.log(), lambda: season.now)
    futures: list[Future[Receipt]] = []
    seen: list[tuple[str, bool, int]] = []
    committer.after_answers.append(
        lambda: seen.append(("hook", answering(), sum(f.done() for f in futures)))
    )
    for env in envs[:5]:
        future = committer.submit(env)
        future.add_done_callback(lambda f: seen.append(("answer", answering(), 0)))
        futures.append(future)
    try:
        assert all(f.result(timeout=60).index >= 0 for f in futures)
        assert _until(lambda: any(kind == "hook" for kind, _, _ in seen))
    finally:
        committer.close()
    answers = [s for s in seen if s[0] == "answer"]
    hooks = [s for s in seen if s[0] == "hook"]
    assert len(answers) == 5 and all(during for _, during, _ in answers)
    assert hooks and all(not during for _, during, _ in hooks)
    assert hooks[-1][2] == 5  # the last hook ran with every answer given
    assert seen.index(hooks[0]) > seen.index(answers[0])
    assert not answering()  # not on this thread


def test_a_refusal_refuses_only_its_own_submission(season: Season) -> None:
    envs = _sealed(season)
    unsigned = _dispatch(season, "PK-2", ["print-qian"])  # the courier did not countersign
    committer = GroupCommit(season.log(), lambda: season.now, window=0.2)
    try:
        answers = [committer.submit(e) for e in [envs[0], unsigned, envs[1]]]
        assert isinstance(answers[0].result(timeout=60), Receipt)
        with pytest.raises(ThresholdError):
            answers[1].result(timeout=60)
        assert isinstance(answers[2].result(timeout=60), Receipt)
    finally:
        committer.close()


def test_a_failed_transaction_answers_everyone_in_it_with_the_storage_error(
    season: Season,
) -> None:
    envs = _sealed(season)
    log = season.log()
    size = log.size()
    with log.engine.begin() as conn:  # the database refuses every append from now on
        conn.execute(text("DROP TABLE tree_node"))
    committer = GroupCommit(log, lambda: season.now, window=0.2)
    try:
        answers: list[Future[Receipt]] = [committer.submit(e) for e in envs[:5]]
        for answer in answers:
            with pytest.raises(StorageError):
                answer.result(timeout=60)
    finally:
        committer.close()
    assert log.size() == size  # nothing half-appended


def test_closing_commits_what_is_queued_then_refuses_more(season: Season) -> None:
    envs = _sealed(season)
    committer = GroupCommit(season.log(), lambda: season.now, window=0.5)
    answers = [committer.submit(e) for e in envs[:3]]
    committer.close()
    assert all(isinstance(a.result(timeout=1), Receipt) for a in answers)
    with pytest.raises(StorageError):
        committer.submit(envs[3])


def test_a_batch_is_answered_only_once_its_checkpoint_is_kept_while_the_next_commits(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint's record outside the database (two fsyncs) is made by a second thread:
    while it holds the first batch's record, the writer commits the next batch, and neither
    batch is answered before its own checkpoint is kept; a record that fails answers its
    batch with the storage error."""
    envs = _sealed(season)
    log = season.log()
    size = log.size()
    release = threading.Event()
    kept: list[int] = []
    keep = log.keep_signed

    def slow_keep(result):  # type: ignore[no-untyped-def]
        release.wait(30)  # the first batch's record is slow; so is every one after it
        if len(kept) == 1:
            raise StorageError("the disk refused the checkpoint file")
        keep(result)
        kept.append(len(result.receipts))

    monkeypatch.setattr(log, "keep_signed", slow_keep)
    committer = GroupCommit(log, lambda: season.now, window=0.05)
    try:
        first = committer.submit(envs[0])
        assert _until(lambda: log.size() == size + 1)  # the first batch commits
        second = [committer.submit(e) for e in envs[1:3]]
        # the second commits while the first's record is still held
        assert _until(lambda: log.size() == size + 3)
        assert not first.done() and not any(a.done() for a in second)
        release.set()
        assert first.result(timeout=30).index == size
        for answer in second:
            with pytest.raises(StorageError):
                answer.result(timeout=30)
    finally:
        release.set()
        committer.close()
    assert kept == [1]
