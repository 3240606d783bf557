"""The job queue's SQL on both backends: dedupe, claim races, leases, fencing, hand-back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from system.db import jobs
from system.db.engine import create_engine, create_sessionmaker
from system.db.models import BackgroundJob, BackgroundTaskFailure

LEASE = 30.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    built = create_engine(database_url)
    try:
        yield built
    finally:
        await built.dispose()


async def put(engine: AsyncEngine, n: int = 1, **kwargs: object) -> list[jobs.Enqueued]:
    sessions = create_sessionmaker(engine)
    out = []
    async with sessions() as session:
        for i in range(n):
            options: dict[str, Any] = {"task_type": "t", "payload": {"i": i}, "max_attempts": 3}
            options.update(kwargs)
            out.append(await jobs.enqueue(session, **options))
        await session.commit()
    return out


async def row(engine: AsyncEngine, job_id: int) -> BackgroundJob:
    async with create_sessionmaker(engine)() as session:
        job = await session.get(BackgroundJob, job_id)
        assert job is not None
        return job


async def expire_lease(engine: AsyncEngine, job_id: int) -> None:
    """Move the lease into the past on the database's own clock (the row, not the clock)."""
    past = jobs.db_now(engine.dialect.name, -60)
    async with engine.begin() as conn:
        await conn.execute(
            update(BackgroundJob).where(BackgroundJob.id == job_id).values(lease_expires_at=past)
        )


async def test_enqueue_writes_a_queued_job_with_the_database_clock(engine: AsyncEngine) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    [queued] = await put(engine)
    job = await row(engine, queued.id)
    assert (job.status, job.attempts, job.lease_owner, job.payload) == ("queued", 0, None, {"i": 0})
    assert before <= job.run_after <= datetime.now(UTC) + timedelta(seconds=2)
    assert job.created_at.tzinfo is not None


async def test_dedupe_key_gives_one_live_job(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)

    async def once() -> jobs.Enqueued:
        async with sessions() as session:
            got = await jobs.enqueue(
                session, task_type="t", payload={}, max_attempts=3, dedupe_key="k"
            )
            await session.commit()
            return got

    results = [await once() for _ in range(5)]
    assert len({r.id for r in results}) == 1
    assert [r.existing for r in results] == [False, True, True, True, True]
    # A finished job frees its key: the next enqueue makes a new job.
    [claimed] = await jobs.claim(engine, owner="a", limit=5, lease_seconds=LEASE)
    async with sessions() as session:
        assert await jobs.finish(session, job_id=claimed.id, attempt=1, status="done")
        await session.commit()
    again = await once()
    assert again.id != claimed.id and not again.existing


async def test_concurrent_enqueues_of_one_key_make_one_job(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)

    async def once() -> int:
        async with sessions() as session:
            got = await jobs.enqueue(
                session, task_type="t", payload={}, max_attempts=3, dedupe_key="same"
            )
            await session.commit()
            return got.id

    ids = await asyncio.gather(*(once() for _ in range(20)))
    assert len(set(ids)) == 1
    async with sessions() as session:
        assert (
            await session.scalar(select(BackgroundJob.id).where(BackgroundJob.id != ids[0])) is None
        )


async def test_a_duplicate_does_not_abort_the_callers_transaction(engine: AsyncEngine) -> None:
    await put(engine, dedupe_key="k")
    async with create_sessionmaker(engine)() as session:
        await jobs.enqueue(session, task_type="t", payload={}, max_attempts=3, dedupe_key="k")
        # Still usable: an IntegrityError would have aborted a PostgreSQL transaction.
        assert await session.scalar(text("SELECT 1")) == 1
        await jobs.enqueue(session, task_type="t", payload={"other": 1}, max_attempts=3)
        await session.commit()
    async with create_sessionmaker(engine)() as session:
        assert len((await session.scalars(select(BackgroundJob))).all()) == 2


async def test_claim_leases_due_jobs_once_and_counts_an_attempt(engine: AsyncEngine) -> None:
    await put(engine, 3)
    await put(engine, 1, delay_seconds=3600)  # not due
    claimed = await jobs.claim(engine, owner="a", limit=10, lease_seconds=LEASE)
    assert [job.attempt for job in claimed] == [1, 1, 1]
    assert not any(job.taken_over for job in claimed)
    assert await jobs.claim(engine, owner="b", limit=10, lease_seconds=LEASE) == []
    job = await row(engine, claimed[0].id)
    assert job.status == "running" and job.lease_owner == "a"
    assert job.lease_expires_at is not None and job.started_at is not None
    assert 20 < (job.lease_expires_at - job.started_at).total_seconds() <= LEASE + 1


async def test_claim_respects_excluded_task_types(engine: AsyncEngine) -> None:
    await put(engine, 1, task_type="bgg_import")
    await put(engine, 1, task_type="thumbnail_download")
    claimed = await jobs.claim(
        engine, owner="a", limit=10, lease_seconds=LEASE, exclude_types={"bgg_import"}
    )
    assert [job.task_type for job in claimed] == ["thumbnail_download"]


async def test_claim_race_every_job_claimed_exactly_once(database_url: str) -> None:
    setup = create_engine(database_url)
    await put(setup, 200)
    await setup.dispose()
    engines = [create_engine(database_url) for _ in range(20)]
    got: list[int] = []

    async def claimer(n: int) -> None:
        while True:
            claimed = await jobs.claim(engines[n], owner=f"w{n}", limit=3, lease_seconds=LEASE)
            if not claimed:
                return
            got.extend(job.id for job in claimed)

    try:
        await asyncio.gather(*(claimer(n) for n in range(20)))
    finally:
        for built in engines:
            await built.dispose()
    assert len(got) == 200
    assert len(set(got)) == 200


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_skip_locked_claimer_does_not_wait_on_a_held_row(engine: AsyncEngine) -> None:
    await put(engine, 2)
    async with engine.connect() as holder:
        # Another claimer's transaction holds the first job's row lock and has not committed.
        await holder.execute(
            select(BackgroundJob.id).order_by(BackgroundJob.id).limit(1).with_for_update()
        )
        other = create_engine(str(engine.url.render_as_string(hide_password=False)))
        try:
            async with other.connect() as conn:
                await conn.execute(text("SET lock_timeout = '200ms'"))
                await conn.commit()
            claimed = await jobs.claim(other, owner="b", limit=2, lease_seconds=LEASE)
        finally:
            await other.dispose()
        await holder.rollback()
    assert len(claimed) == 1  # the held row was skipped, not waited for


async def test_expired_lease_is_claimed_again_as_an_attempt(engine: AsyncEngine) -> None:
    await put(engine)
    [first] = await jobs.claim(engine, owner="a", limit=1, lease_seconds=LEASE)
    assert await jobs.claim(engine, owner="b", limit=1, lease_seconds=LEASE) == []
    await expire_lease(engine, first.id)
    [second] = await jobs.claim(engine, owner="b", limit=1, lease_seconds=LEASE)
    assert (second.id, second.attempt, second.taken_over) == (first.id, 2, True)
    job = await row(engine, first.id)
    assert (job.lease_owner, job.attempts, job.lease_expiries) == ("b", 2, 1)
    # The old owner lost it: renewal, finish and hand-back change nothing.
    assert await jobs.renew(engine, owner="a", jobs=[(first.id, 1)], lease_seconds=LEASE) == set()
    async with create_sessionmaker(engine)() as session:
        assert not await jobs.finish(session, job_id=first.id, attempt=1, status="done")
        await session.commit()
    assert not await jobs.hand_back(engine, owner="a", job_id=first.id, attempt=1)
    assert (await row(engine, first.id)).status == "running"
    assert await jobs.renew(engine, owner="b", jobs=[(first.id, 2)], lease_seconds=LEASE) == {
        first.id
    }


async def test_a_worker_clock_an_hour_ahead_cannot_take_a_live_lease(engine: AsyncEngine) -> None:
    await put(engine)
    [first] = await jobs.claim(engine, owner="a", limit=1, lease_seconds=LEASE)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=True):
        assert await jobs.claim(engine, owner="b", limit=1, lease_seconds=LEASE) == []
    assert (await row(engine, first.id)).lease_owner == "a"


async def test_hand_back_requeues_without_spending_an_attempt(engine: AsyncEngine) -> None:
    await put(engine)
    [job] = await jobs.claim(engine, owner="a", limit=1, lease_seconds=LEASE)
    assert await jobs.hand_back(engine, owner="a", job_id=job.id, attempt=1, reason="drain")
    stored = await row(engine, job.id)
    assert (stored.status, stored.attempts, stored.lease_owner) == ("queued", 0, None)
    [again] = await jobs.claim(engine, owner="b", limit=1, lease_seconds=LEASE)
    assert (again.id, again.attempt) == (job.id, 1)


async def test_hand_back_with_a_delay_waits(engine: AsyncEngine) -> None:
    await put(engine)
    [job] = await jobs.claim(engine, owner="a", limit=1, lease_seconds=LEASE)
    assert await jobs.hand_back(engine, owner="a", job_id=job.id, attempt=1, delay_seconds=600)
    assert await jobs.claim(engine, owner="b", limit=1, lease_seconds=LEASE) == []


async def test_counts_and_oldest_due(engine: AsyncEngine) -> None:
    await put(engine, 2, task_type="a")
    await put(engine, 1, task_type="b", delay_seconds=600)
    await jobs.claim(engine, owner="w", limit=1, lease_seconds=LEASE, exclude_types={"b"})
    async with create_sessionmaker(engine)() as session:
        counted = await jobs.count_jobs(session)
    assert counted.counts == {("a", "queued"): 1, ("a", "running"): 1, ("b", "queued"): 1}
    assert set(counted.oldest_due_seconds) == {"a"}
    assert 0 <= counted.oldest_due_seconds["a"] < 30


async def test_lease_check_constraint(engine: AsyncEngine) -> None:
    [queued] = await put(engine)
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        async with engine.begin() as conn:
            await conn.execute(
                update(BackgroundJob).where(BackgroundJob.id == queued.id).values(status="running")
            )


async def test_retention_deletes_old_finished_jobs_but_keeps_unresolved_failures(
    engine: AsyncEngine,
) -> None:
    done, failed_unresolved, failed_resolved, recent, live = await put(engine, 5)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        unresolved = BackgroundTaskFailure(task_type="t", error_message="x", resolved=False)
        resolved = BackgroundTaskFailure(task_type="t", error_message="x", resolved=True)
        session.add_all([unresolved, resolved])
        await session.flush()
        old = jobs.db_now(engine.dialect.name, -8 * 86400)
        for job, status, failure in (
            (done, "done", None),
            (failed_unresolved, "failed", unresolved.id),
            (failed_resolved, "failed", resolved.id),
        ):
            await session.execute(
                update(BackgroundJob)
                .where(BackgroundJob.id == job.id)
                .values(status=status, finished_at=old, failure_id=failure)
            )
        await session.execute(
            update(BackgroundJob)
            .where(BackgroundJob.id == recent.id)
            .values(status="done", finished_at=jobs.db_now(engine.dialect.name))
        )
        await session.commit()
    assert await jobs.delete_finished(engine, older_than_days=7) == 2
    async with sessions() as session:
        left = set(await session.scalars(select(BackgroundJob.id)))
    assert left == {failed_unresolved.id, recent.id, live.id}
