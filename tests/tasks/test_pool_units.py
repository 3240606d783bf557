"""One `JobPool` against a real database (both backends), without the app around it.

What a worker's operator and the job's owner rely on: the failure row a job that cannot run
leaves, the claim limits, the log lines of a database outage, the hand-back callbacks, and the
lease deadlines, on an injected monotonic clock. Pools are built in the test body (mutmut maps
a test to the functions it calls only when the test runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from system.db import jobs
from system.db.database import Database
from system.db.jobs import ClaimedJob
from system.db.models import BackgroundJob, BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.tasks.pool import InvalidJobPayload, JobPool, new_owner
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from tests.support.waiting import eventually

LEASE = 30.0
MARGIN = 5.0


class Clock:
    """An injected monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The test's database, closed after it."""
    db = Database(database_url)
    yield db
    await db.close()


def build(database: Database, tmp_path: Path, **options: Any) -> JobPool:
    values: dict[str, Any] = {
        "slots": 4,
        "lease_seconds": LEASE,
        "lease_margin": MARGIN,
        "poll_seconds": 60.0,
        "owner": "here",
    }
    values.update(options)
    recorder = TaskRecorder(database, Spool(tmp_path / "spool.jsonl"))
    return JobPool(database, recorder, **values)


async def hangs(job: ClaimedJob) -> None:
    """A task that never ends on its own."""
    await asyncio.Event().wait()


async def put(database: Database, task_type: str, payload: Any, **options: Any) -> int:
    async with database.session() as session:
        queued = await jobs.enqueue(
            session, task_type=task_type, payload=payload, max_attempts=3, **options
        )
    return queued.id


async def rows(database: Database, model: Any) -> list[Any]:
    async with database.session() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


def test_a_new_owner_names_the_host_the_process_and_a_random_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "h" * 80)
    first, second = new_owner(), new_owner()
    assert re.fullmatch(rf"h{{60}}:{os.getpid()}:[0-9a-f]{{8}}", first)
    assert first != second  # two processes on one host and pid namespace still differ


async def test_a_pool_without_an_owner_gets_a_new_one(database: Database, tmp_path: Path) -> None:
    assert build(database, tmp_path, owner="given").owner == "given"
    assert re.fullmatch(r".+:\d+:[0-9a-f]{8}", build(database, tmp_path, owner=None).owner)


async def test_a_job_failed_by_the_pool_leaves_a_failure_row_with_what_it_knows(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    async with database.session() as session:
        game = BoardGame(bgg_id=1, title="x")
        session.add(game)
        await session.flush()
        game_id = game.id
    await put(database, "t", {"game_id": game_id, "url": "http://cdn/a.png"}, trigger="retry")
    await put(database, "t", {"game_id": str(game_id), "url": 5})
    await put(database, "t", ["not", "a", "dict"])
    claimed = await jobs.claim(database.engine, owner="here", limit=3, lease_seconds=LEASE)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        raised = exc
        await pool.fail(claimed[0], "Broken", "it broke", exc)
    await pool.fail(claimed[1], "Other", "no trace")
    await pool.fail(claimed[2], "Odd", "a list")
    first, second, third = await rows(database, BackgroundTaskFailure)
    assert (first.task_type, first.game_id, first.url) == ("t", game_id, "http://cdn/a.png")
    assert (first.error_type, first.error_message) == ("Broken", "it broke")
    assert first.stack_trace is not None
    assert "Traceback" in first.stack_trace and "ValueError: boom" in first.stack_trace
    assert first.stack_trace == "".join(traceback.format_exception(raised))
    assert first.retry_count == 1  # a new failure row counts this one run
    assert (second.game_id, second.url, second.stack_trace) == (None, None, None)
    assert (second.error_type, second.error_message) == ("Other", "no trace")
    assert (third.game_id, third.url, third.error_type) == (None, None, "Odd")
    runs = await rows(database, BackgroundTaskRun)
    assert [(r.job_id, r.record_id, r.outcome, r.attempts) for r in runs] == [
        (job.id, job.record_id, "failure", 1) for job in claimed
    ]
    assert [r.trigger for r in runs] == ["retry", "initial", "initial"]
    assert all(r.started_at == r.finished_at for r in runs)
    ended = await rows(database, BackgroundJob)
    assert [(j.status, j.failure_id) for j in ended] == [
        ("failed", first.id), ("failed", second.id), ("failed", third.id),
    ]  # fmt: skip


async def test_jobs_that_cannot_run_fail_with_their_reason(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = build(database, tmp_path)

    async def refuses(job: ClaimedJob) -> None:
        raise InvalidJobPayload("game_id missing")

    async def crashes(job: ClaimedJob) -> None:
        raise KeyError("bug")

    pool.register("refuses", refuses)
    pool.register("crashes", crashes)
    await put(database, "refuses", {})
    await put(database, "crashes", {})
    await put(database, "nobody", {})
    caplog.set_level(logging.ERROR, logger="system.tasks.pool")
    pool.start()
    try:
        await pool.join()
    finally:
        await pool.drain(1.0)
    failures = {f.task_type: f for f in await rows(database, BackgroundTaskFailure)}
    assert {t: (f.error_type, f.error_message) for t, f in failures.items()} == {
        "refuses": ("InvalidJobPayload", "Invalid payload: game_id missing"),
        "crashes": ("KeyError", "Unexpected error: 'bug'"),
        "nobody": ("UnknownTaskType", "no handler for 'nobody'"),
    }
    assert failures["refuses"].stack_trace is not None
    assert failures["crashes"].stack_trace is not None
    assert failures["nobody"].stack_trace is None
    crash_id = next(j.id for j in await rows(database, BackgroundJob) if j.task_type == "crashes")
    assert f"job {crash_id} (crashes) crashed" in caplog.messages
    assert [j.status for j in await rows(database, BackgroundJob)] == ["failed"] * 3


async def test_a_job_past_its_attempts_fails_without_running(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    ran: list[int] = []

    async def handler(job: ClaimedJob) -> None:
        ran.append(job.id)

    pool.register("t", handler)
    job_id = await put(database, "t", {})
    # Three earlier workers died holding it; this claim is attempt 4 of 3.
    for owner in ("dead-1", "dead-2", "dead-3"):
        await jobs.claim(database.engine, owner=owner, limit=1, lease_seconds=LEASE)
        await _expire(database, job_id)
    pool.start()
    try:
        await pool.join()
    finally:
        await pool.drain(1.0)
    assert ran == []
    (failure,) = await rows(database, BackgroundTaskFailure)
    assert (failure.error_type, failure.error_message) == (
        "LeaseExpired", "its worker stopped 3 times before finishing it",
    )  # fmt: skip


async def _expire(database: Database, job_id: int) -> None:
    from tests.db.test_jobs import expire_lease

    await expire_lease(database.engine, job_id)


async def test_a_limited_task_type_is_claimed_first_up_to_its_limit(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path, slots=3)
    seen: list[tuple[str, bool]] = []
    pool.on_claim = lambda job: seen.append((job.task_type, job.taken_over))
    gate = asyncio.Event()

    async def waits(job: ClaimedJob) -> None:
        await gate.wait()

    for task_type in ("a", "b", "c"):
        pool.register(task_type, waits)
    for task_type in ("b", "b", "b", "a", "a", "c"):
        await put(database, task_type, {})
    pool.limit_claims("a", lambda: 1)
    pool.limit_claims("c", lambda: None)  # None: no limit, claimed with the rest
    claimed = await pool._claim()
    assert [job.task_type for job in claimed] == ["a", "b", "b"]
    assert seen == [("a", False), ("b", False), ("b", False)]
    assert pool.running == 3
    assert await pool._claim() == []  # no free slot
    gate.set()
    await asyncio.gather(*(entry.task for entry in pool._running.values()))


async def test_a_limit_larger_than_the_free_slots_takes_only_the_free_slots(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path, slots=2)
    gate = asyncio.Event()

    async def waits(job: ClaimedJob) -> None:
        await gate.wait()

    pool.register("a", waits)
    for _ in range(4):
        await put(database, "a", {})
    pool.limit_claims("a", lambda: 5)
    assert len(await pool._claim()) == 2
    gate.set()
    await asyncio.gather(*(entry.task for entry in pool._running.values()))


async def test_a_claim_outage_is_logged_once_and_its_end_once(
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = build(database, tmp_path)
    caplog.set_level(logging.INFO, logger="system.tasks.pool")
    real_claim = jobs.claim

    async def refused(*_args: object, **_kwargs: object) -> list[ClaimedJob]:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(jobs, "claim", refused)
    assert await pool._claim() == []
    assert await pool._claim() == []
    monkeypatch.setattr(jobs, "claim", real_claim)
    assert await pool._claim() == []
    assert await pool._claim() == []
    messages = [r.getMessage() for r in caplog.records if r.name == "system.tasks.pool"]
    assert len(messages) == 2
    assert messages[0] == "cannot claim background jobs: no connection (ConnectionRefusedError)"
    assert messages[1] == "claiming background jobs again"


async def test_a_taken_over_job_is_logged_with_its_attempt(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = build(database, tmp_path)

    async def handler(job: ClaimedJob) -> None:
        return None

    pool.register("t", handler)
    job_id = await put(database, "t", {})
    await jobs.claim(database.engine, owner="dead", limit=1, lease_seconds=LEASE)
    await _expire(database, job_id)
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    (claimed,) = await pool._claim()
    assert claimed.taken_over
    assert f"job {job_id} (t): its previous worker's lease expired; attempt 2" in (caplog.messages)
    await asyncio.gather(*(entry.task for entry in pool._running.values()))


async def test_hand_back_tells_the_callback_only_when_the_job_went_back(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    told: list[tuple[int, str]] = []
    pool.on_hand_back = lambda job, reason: told.append((job.id, reason))
    await put(database, "t", {})
    (job,) = await jobs.claim(database.engine, owner="here", limit=1, lease_seconds=LEASE)
    assert await pool.hand_back(job, delay_seconds=120, reason="breaker-open")
    assert told == [(job.id, "breaker-open")]
    (row,) = await rows(database, BackgroundJob)
    assert (row.status, row.attempts, row.last_error_type) == ("queued", 0, "breaker-open")
    # Not due before its delay: a claim now finds nothing.
    assert await jobs.claim(database.engine, owner="x", limit=1, lease_seconds=LEASE) == []
    assert not await pool.hand_back(job, delay_seconds=0, reason="again")
    assert told == [(job.id, "breaker-open")]


async def test_a_lease_renewed_in_time_keeps_the_job_until_its_new_deadline(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    pool = build(database, tmp_path, monotonic=clock)

    pool.register("t", hangs)
    job_id = await put(database, "t", {})
    assert len(await pool._claim()) == 1
    # Claimed at 1000: the deadline is 1000 + 30 - 5.
    clock.now = 1000 + LEASE - MARGIN - 0.5
    await pool.renew_once()  # renewed at 1024.5: the new deadline is 1049.5
    assert pool.running == 1
    clock.now = 1000 + 2 * (LEASE - MARGIN) - 0.5 - 0.01
    assert pool._time_to_deadline() == pytest.approx(0.05)  # never less than 0.05 s
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    clock.now = 1000 + 2 * (LEASE - MARGIN) - 0.5
    await _refused_renew(pool)
    assert pool._running[job_id].stopped
    assert f"job {job_id}: lease not renewed in time: stopping it" in caplog.messages
    await asyncio.gather(pool._running[job_id].task, return_exceptions=True)
    assert pool.running == 0
    # A job stopped by the pool records nothing: its lease is not this worker's any more.
    assert await rows(database, BackgroundTaskRun) == []


async def _refused_renew(pool: JobPool) -> None:
    real = jobs.renew

    async def refused(*_args: object, **_kwargs: object) -> set[int]:
        raise ConnectionRefusedError("database down")

    jobs.renew = refused
    try:
        await pool.renew_once()
    finally:
        jobs.renew = real


async def test_time_to_the_next_renewal_follows_the_soonest_deadline(
    database: Database, tmp_path: Path
) -> None:
    clock = Clock()
    pool = build(database, tmp_path, monotonic=clock)
    assert pool._time_to_deadline() == LEASE / 3  # nothing running: the renewal period
    gate = asyncio.Event()

    async def waits(job: ClaimedJob) -> None:
        await gate.wait()

    pool.register("t", waits)
    await put(database, "t", {})
    await pool._claim()
    clock.now += 1
    await put(database, "t", {})
    await pool._claim()
    clock.now += 2
    # Deadlines 1025 and 1026; now 1003.
    assert pool._time_to_deadline() == pytest.approx(LEASE - MARGIN - 3)
    gate.set()
    await asyncio.gather(*(entry.task for entry in pool._running.values()))


async def test_a_job_taken_over_by_another_worker_is_stopped_and_logged(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = build(database, tmp_path, monotonic=Clock())

    pool.register("t", hangs)
    job_id = await put(database, "t", {})
    await pool._claim()
    await _expire(database, job_id)
    await jobs.claim(database.engine, owner="other", limit=1, lease_seconds=LEASE)
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    await pool.renew_once()
    assert caplog.messages == [f"job {job_id} was taken over by another worker: stopping it"]
    assert pool._running[job_id].stopped
    await asyncio.gather(pool._running[job_id].task, return_exceptions=True)
    assert pool.running == 0


async def test_drain_hands_back_what_did_not_finish_and_says_so(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = build(database, tmp_path, poll_seconds=0.01)
    told: list[tuple[int, str]] = []
    pool.on_hand_back = lambda job, reason: told.append((job.id, reason))
    started = asyncio.Event()
    quick = asyncio.Event()

    async def hangs(job: ClaimedJob) -> None:
        started.set()
        await asyncio.Event().wait()

    async def ends(job: ClaimedJob) -> None:
        await quick.wait()
        await pool.fail(job, "Done", "ended in the grace time")

    pool.register("hangs", hangs)
    pool.register("ends", ends)
    hung = await put(database, "hangs", {})
    await put(database, "ends", {})
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    pool.start()
    await started.wait()
    while pool.running < 2:
        await asyncio.sleep(0)
    quick.set()
    assert await pool.drain(0.2) == 1
    assert told == [(hung, "drain")]
    assert "shutdown: 1 background jobs unfinished, 1 handed back to the queue" in (caplog.messages)
    statuses = {j.task_type: (j.status, j.attempts) for j in await rows(database, BackgroundJob)}
    assert statuses == {"hangs": ("queued", 0), "ends": ("failed", 1)}
    assert (pool.started, pool.running) == (False, 0)
    # A drained pool starts again (the worker command's restart) and claims again.
    pool.start()
    assert pool.started
    pool.register("hangs", lambda job: pool.fail(job, "Again", "ran after restart"))
    await pool.join()
    assert await pool.drain(1.0) == 0
    (again,) = [j for j in await rows(database, BackgroundJob) if j.task_type == "hangs"]
    assert (again.status, again.attempts) == ("failed", 1)


async def test_join_needs_a_started_pool(database: Database, tmp_path: Path) -> None:
    pool = build(database, tmp_path)
    with pytest.raises(RuntimeError, match=r"^the job pool is not started$"):
        await pool.join()


async def finished_long_ago(database: Database, count: int) -> None:
    """`count` jobs that ended (done) two days ago, as the retention loop finds them."""
    async with database.session() as session:
        await jobs.enqueue_many(
            session,
            task_type="t",
            jobs=[({"i": i}, f"old-{i}") for i in range(count)],
            max_attempts=3,
        )
    past = jobs.db_now(database.engine.dialect.name, -2 * 86400)
    async with database.engine.begin() as conn:
        await conn.execute(update(BackgroundJob).values(status="done", finished_at=past))


async def test_retention_deletes_every_old_job_a_thousand_at_a_time_and_says_how_many(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = build(database, tmp_path)
    caplog.set_level(logging.INFO, logger="system.tasks.pool")
    assert await pool.delete_finished(1.5) == 0
    assert caplog.messages == []  # nothing deleted: nothing said
    await finished_long_ago(database, 1001)
    assert await pool.delete_finished(3) == 0  # not old enough
    assert await pool.delete_finished(1.5) == 1001
    assert caplog.messages == ["deleted 1001 background jobs finished over 1.5 days ago"]
    assert await rows(database, BackgroundJob) == []


async def test_a_pool_hands_back_without_a_callback_and_drains_unstarted(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    await put(database, "t", {})
    (job,) = await jobs.claim(database.engine, owner="here", limit=1, lease_seconds=LEASE)
    assert await pool.hand_back(job, delay_seconds=0, reason="breaker-open")
    (row,) = await rows(database, BackgroundJob)
    assert (row.status, row.last_error_type) == ("queued", "breaker-open")
    assert await pool.drain(0) == 0  # a pool that never started has nothing to stop


async def test_limited_task_types_share_the_free_slots_and_the_rest_take_what_is_left(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path, slots=4)
    gate = asyncio.Event()

    async def waits(job: ClaimedJob) -> None:
        await gate.wait()

    for task_type in ("a", "c", "b"):
        pool.register(task_type, waits)
    # The limited types come first in the queue: the rest's claim must not take them.
    for task_type in ("a", "a", "a", "c", "c", "c", "b", "b"):
        await put(database, task_type, {})
    pool.limit_claims("a", lambda: 2)
    pool.limit_claims("c", lambda: 5)  # more than is left free after a's two
    claimed = await pool._claim()
    assert sorted(job.task_type for job in claimed) == ["a", "a", "c", "c"]
    gate.set()
    await asyncio.gather(*(entry.task for entry in pool._running.values()))
    pool2 = build(database, tmp_path, slots=1)
    pool2.register("b", waits)
    pool2.register("a", waits)
    pool2.register("c", waits)
    assert len(await pool2._claim()) == 1  # one free slot still claims
    await asyncio.gather(*(entry.task for entry in pool2._running.values()))
    # Left now: c, b, b (the one-slot pool took the last a). With c limited to none now
    # (its breaker open), the rest's claim must not take it.
    pool3 = build(database, tmp_path, slots=4)
    for task_type in ("a", "b", "c"):
        pool3.register(task_type, waits)
    pool3.limit_claims("a", lambda: 1)
    pool3.limit_claims("c", lambda: 0)
    assert sorted(job.task_type for job in await pool3._claim()) == ["b", "b"]
    await asyncio.gather(*(entry.task for entry in pool3._running.values()))


async def test_a_job_on_its_last_attempt_still_runs(database: Database, tmp_path: Path) -> None:
    pool = build(database, tmp_path)
    ran: list[ClaimedJob] = []

    async def handler(job: ClaimedJob) -> None:
        ran.append(job)
        await pool.fail(job, "Done", "recorded")

    pool.register("t", handler)
    async with database.session() as session:
        await jobs.enqueue(session, task_type="t", payload={"k": 1}, max_attempts=1)
    pool.start()
    try:
        await pool.join()
    finally:
        await pool.drain(1.0)
    assert [(job.attempt, job.max_attempts, job.payload) for job in ran] == [(1, 1, {"k": 1})]


async def test_a_retried_job_that_cannot_run_adds_to_its_failure_row(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    await put(database, "nobody", {})
    (first,) = await jobs.claim(database.engine, owner="here", limit=1, lease_seconds=LEASE)
    await pool.fail(first, "UnknownTaskType", "no handler")
    (failure,) = await rows(database, BackgroundTaskFailure)
    before = failure.retry_count or 0
    await put(database, "nobody", {}, trigger="retry", failure_id=failure.id)
    (retry,) = await jobs.claim(database.engine, owner="here", limit=1, lease_seconds=LEASE)
    await pool.fail(retry, "UnknownTaskType", "no handler")
    (failure,) = await rows(database, BackgroundTaskFailure)
    assert (failure.retry_count or 0) > before  # the same row, one more retry on it
    assert [(j.status, j.failure_id) for j in await rows(database, BackgroundJob)] == [
        ("failed", failure.id), ("failed", failure.id),
    ]  # fmt: skip


async def test_a_job_whose_lease_is_never_renewed_stops_at_its_claim_deadline(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    pool = build(database, tmp_path, monotonic=clock)

    pool.register("t", hangs)
    job_id = await put(database, "t", {})
    await pool._claim()  # at 1000: must be renewed by 1025
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    clock.now = 1000 + LEASE - MARGIN - 0.01
    await _refused_renew(pool)
    assert not pool._running[job_id].stopped
    assert caplog.messages == ["cannot renew job leases: no connection (ConnectionRefusedError)"]
    clock.now = 1000 + LEASE - MARGIN
    await _refused_renew(pool)
    assert pool._running[job_id].stopped
    # A stopped job is not renewed again, nor stopped twice.
    await asyncio.sleep(0)
    caplog.clear()
    await pool.renew_once()
    assert caplog.messages == []


async def test_the_pool_s_tasks_are_named_for_debugging_dumps(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    gate = asyncio.Event()

    async def waits(job: ClaimedJob) -> None:
        await gate.wait()

    pool.register("t", waits)
    job_id = await put(database, "t", {})
    pool.start()
    try:
        while pool.running == 0:
            await asyncio.sleep(0)
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert {"job-claims", "job-leases", f"job-{job_id}"} <= names
        gate.set()
        await pool.join()
    finally:
        await pool.drain(1.0)


async def test_a_job_queued_by_another_process_is_claimed_at_the_next_poll(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path, poll_seconds=0.01)
    ran = asyncio.Event()

    async def handler(job: ClaimedJob) -> None:
        ran.set()

    pool.register("t", handler)
    pool.start()
    try:
        await pool.join()
        await put(database, "t", {})  # no wake(): only polling finds it
        await asyncio.wait_for(ran.wait(), 30)
    finally:
        await pool.drain(1.0)


async def test_drain_skips_jobs_it_already_stopped_and_hands_back_the_rest(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = build(database, tmp_path, monotonic=Clock())
    told: list[tuple[int, str]] = []
    pool.on_hand_back = lambda job, reason: told.append((job.id, reason))

    async def stubborn(job: ClaimedJob) -> None:
        # Slow to stop: its first cancellation finds it in a cleanup step.
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()

    pool.register("stubborn", stubborn)
    pool.register("hangs", hangs)
    lost = await put(database, "stubborn", {})
    kept = [await put(database, "hangs", {}) for _ in range(2)]
    await pool._claim()
    await _expire(database, lost)
    await jobs.claim(database.engine, owner="other", limit=1, lease_seconds=LEASE)
    await pool.renew_once()  # the stubborn job's lease is gone: stopped, still running
    await asyncio.sleep(0)
    assert pool.running == 3
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    assert await pool.drain(0) == 3
    assert told == [(job_id, "drain") for job_id in kept]
    assert caplog.messages[-1] == (
        "shutdown: 3 background jobs unfinished, 2 handed back to the queue"
    )
    owners = {j.id: (j.status, j.lease_owner) for j in await rows(database, BackgroundJob)}
    assert owners == {
        lost: ("running", "other"), kept[0]: ("queued", None), kept[1]: ("queued", None),
    }  # fmt: skip


async def test_drain_says_which_job_it_could_not_hand_back(
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = build(database, tmp_path)
    told: list[int] = []
    pool.on_hand_back = lambda job, reason: told.append(job.id)

    pool.register("t", hangs)
    job_id = await put(database, "t", {})
    await pool._claim()

    async def refused(*_args: object, **_kwargs: object) -> bool:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(jobs, "hand_back", refused)
    caplog.set_level(logging.WARNING, logger="system.tasks.pool")
    assert await pool.drain(0) == 1
    assert told == []
    assert caplog.messages == [
        f"could not hand job {job_id} back: no connection (ConnectionRefusedError)",
        "shutdown: 1 background jobs unfinished, 0 handed back to the queue",
    ]


async def test_a_claim_in_flight_at_shutdown_ends_and_its_job_runs_before_drain_returns(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polling faster than a lease lasts: drain waits poll + lease seconds for the claim.
    pool = build(database, tmp_path, poll_seconds=0.01)
    real_claim = jobs.claim
    claimed, release = asyncio.Event(), asyncio.Event()

    async def slow_claim(*args: Any, **kwargs: Any) -> list[ClaimedJob]:
        got = await real_claim(*args, **kwargs)
        if got:  # the rows are leased; the answer is slow to come back
            claimed.set()
            await release.wait()
        return got

    async def handler(job: ClaimedJob) -> None:
        await pool.fail(job, "Done", "ran")

    pool.register("t", handler)
    monkeypatch.setattr(jobs, "claim", slow_claim)
    await put(database, "t", {})
    pool.start()
    await claimed.wait()
    draining = asyncio.create_task(pool.drain(30))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not draining.done()  # it waits for the claim to end
    release.set()
    assert await draining == 0
    ((status, owner),) = [(j.status, j.lease_owner) for j in await rows(database, BackgroundJob)]
    assert (status, owner) == ("failed", None)  # run and recorded, not left leased


async def test_a_claim_that_hangs_at_shutdown_is_cancelled_after_poll_and_lease_time(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = build(database, tmp_path, lease_seconds=0.2, lease_margin=0.05, poll_seconds=0.01)
    entered = asyncio.Event()

    async def hung_claim(*_args: object, **_kwargs: object) -> list[ClaimedJob]:
        entered.set()
        await asyncio.Event().wait()
        return []

    monkeypatch.setattr(jobs, "claim", hung_claim)
    pool.start()
    await entered.wait()
    assert await asyncio.wait_for(pool.drain(0), 10) == 0
    assert not pool.started


async def test_join_waits_for_a_claim_round_that_started_after_it(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = build(database, tmp_path)
    real_claim = jobs.claim
    looked, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow_claim(*args: Any, **kwargs: Any) -> list[ClaimedJob]:
        nonlocal calls
        got = await real_claim(*args, **kwargs)
        calls += 1
        if calls == 2:  # the second round has looked (found nothing) and is slow to end
            looked.set()
            await release.wait()
        return got

    ran: list[int] = []

    async def handler(job: ClaimedJob) -> None:
        ran.append(job.id)
        await pool.fail(job, "Done", "ran")

    pool.register("t", handler)
    monkeypatch.setattr(jobs, "claim", slow_claim)
    pool.start()
    await pool.join()
    pool.wake()
    await looked.wait()
    # Committed while that round is under way: it cannot have seen this job.
    job_id = await put(database, "t", {})
    joining = asyncio.create_task(pool.join())
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    await joining
    assert ran == [job_id]
    await pool.drain(1.0)


async def test_a_worker_keeps_a_job_through_one_failed_renewal(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real time (asyncio's timeouts): renewals every 0.5 s, each giving 1.2 s to the next.
    pool = build(database, tmp_path, lease_seconds=1.5, lease_margin=0.3)
    real_renew = jobs.renew
    attempts: list[bool] = []
    renewed = asyncio.Event()

    async def blip(*args: Any, **kwargs: Any) -> set[int]:
        if attempts == [True]:  # the renewal after a good one fails
            attempts.append(False)
            raise ConnectionRefusedError("database down for a moment")
        kept = await real_renew(*args, **kwargs)
        attempts.append(True)
        if attempts[-2:] == [False, True]:
            renewed.set()
        return kept

    async def handler(job: ClaimedJob) -> None:
        await renewed.wait()
        await pool.fail(job, "Done", "outlived a failed renewal")

    pool.register("t", handler)
    monkeypatch.setattr(jobs, "renew", blip)
    await put(database, "t", {})
    pool.start()
    try:
        await asyncio.wait_for(renewed.wait(), 20)
        await pool.join()
    finally:
        await pool.drain(1.0)
    assert attempts[:3] == [True, False, True]
    ((status, error),) = [
        (j.status, j.last_error_type) for j in await rows(database, BackgroundJob)
    ]
    assert (status, error) == ("failed", "Done")  # it ran to its end, not stopped


async def test_renewal_extends_only_this_worker_s_own_lease_by_the_lease_time(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path, monotonic=Clock())

    pool.register("t", hangs)
    mine = await put(database, "t", {})
    theirs = await put(database, "t", {})
    claimed = await pool._claim()
    # Theirs: handed back by its handler, then claimed by another worker as the same
    # attempt number (a hand-back gives the attempt back) while the handler still ends.
    assert await pool.hand_back(claimed[1], delay_seconds=0, reason="breaker-open")
    [other] = await jobs.claim(database.engine, owner="other", limit=1, lease_seconds=LEASE)
    assert (other.id, other.attempt) == (theirs, claimed[1].attempt)
    # Mine: its lease ran down, and a renewal must give it the whole lease time again.
    await _expire(database, mine)
    await pool.renew_once()
    assert not pool._running[mine].stopped
    assert pool._running[theirs].stopped  # not this worker's lease any more
    # Another worker finds nothing to take over: the renewed lease is not expired.
    assert await jobs.claim(database.engine, owner="x", limit=2, lease_seconds=LEASE) == []
    for entry in pool._running.values():
        entry.task.cancel()
    await asyncio.gather(*(e.task for e in pool._running.values()), return_exceptions=True)


async def test_a_pool_cannot_hand_back_a_job_another_worker_now_holds(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    await put(database, "t", {})
    (job,) = await jobs.claim(database.engine, owner="here", limit=1, lease_seconds=LEASE)
    assert await pool.hand_back(job, delay_seconds=0, reason="breaker-open")
    # Another worker claims it as the same attempt number (a hand-back gives it back).
    (other,) = await jobs.claim(database.engine, owner="other", limit=1, lease_seconds=LEASE)
    assert other.attempt == job.attempt
    assert not await pool.hand_back(job, delay_seconds=0, reason="again")
    (row,) = await rows(database, BackgroundJob)
    assert (row.status, row.lease_owner) == ("running", "other")


async def test_join_does_not_poll_the_database_while_a_job_runs(
    database: Database, tmp_path: Path
) -> None:
    # Polling once a minute: join's rounds are the ones it asks for, one at a time.
    pool = build(database, tmp_path)
    gate = asyncio.Event()

    async def gated(job: ClaimedJob) -> None:
        await gate.wait()
        await pool.fail(job, "Done", "ran")

    pool.register("t", gated)
    await put(database, "t", {})
    pool.start()
    await eventually(lambda: pool.running == 1, "the job to run")
    joining = asyncio.create_task(pool.join())
    rounds = pool._rounds
    # A window to see nothing in: a join that spun would start a claim round after each
    # (on SQLite dozens in it, on PostgreSQL hundreds).
    await asyncio.sleep(0.2)
    assert pool._rounds - rounds <= 2
    gate.set()
    await asyncio.wait_for(joining, 10)
    await pool.drain(1.0)


async def test_drain_returns_once_the_jobs_it_cancelled_have_cleaned_up(
    database: Database, tmp_path: Path
) -> None:
    pool = build(database, tmp_path)
    cleaned = asyncio.Event()

    async def cleans_up(job: ClaimedJob) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            # Cleanup that takes a while (a temporary file removed in a thread, say): longer
            # than the rest of the drain, which must not hand the job back meanwhile.
            await asyncio.sleep(0.1)
            cleaned.set()

    pool.register("t", cleans_up)
    await put(database, "t", {})
    pool.start()
    await eventually(lambda: pool.running == 1, "the job to run")
    assert await pool.drain(0) == 1
    assert cleaned.is_set()


async def test_a_renewal_that_hangs_at_shutdown_is_cancelled_after_the_lease_time(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = build(database, tmp_path, lease_seconds=0.3, lease_margin=0.1, poll_seconds=0.01)
    renewing = asyncio.Event()

    async def hung_renew(*_args: object, **_kwargs: object) -> set[int]:
        renewing.set()
        await asyncio.Event().wait()
        return set()

    pool.register("t", hangs)
    monkeypatch.setattr(jobs, "renew", hung_renew)
    await put(database, "t", {})
    pool.start()
    await renewing.wait()
    assert await asyncio.wait_for(pool.drain(0), 10) == 1
    assert not pool.started


async def test_drain_never_hands_back_a_job_another_worker_holds_at_the_same_attempt(
    database: Database, tmp_path: Path
) -> None:
    # This pool handed its job back (an open breaker, say) but its task has not ended; another
    # worker claimed the job since, at the same attempt number (a hand-back spends none).
    pool = build(database, tmp_path)
    told: list[tuple[int, str]] = []
    pool.on_hand_back = lambda job, reason: told.append((job.id, reason))
    handed = asyncio.Event()

    async def hands_back_and_lingers(job: ClaimedJob) -> None:
        assert await pool.hand_back(job, delay_seconds=0, reason="breaker_open")
        handed.set()
        await asyncio.Event().wait()

    pool.register("t", hands_back_and_lingers)
    job_id = await put(database, "t", {})
    pool.start()
    await handed.wait()
    [theirs] = await jobs.claim(database.engine, owner="other", limit=1, lease_seconds=LEASE)
    assert (theirs.id, theirs.attempt) == (job_id, 1)
    assert await pool.drain(0) == 1
    assert told == [(job_id, "breaker_open")]  # the drain handed nothing back
    ((status, owner),) = [(j.status, j.lease_owner) for j in await rows(database, BackgroundJob)]
    assert (status, owner) == ("running", "other")
