"""The job queue's promises that issue 18's mutation run found unpinned, on both backends:
the rows `enqueue_many` writes, `list_jobs`'s order and paging, `count_jobs`'s due ages,
timestamps and leases written on the database's clock, and what retention deletes and keeps.

Times are set by writing rows on the database's own clock (`db_now`), never by sleeping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncEngine

from system.db import jobs
from system.db.engine import create_sessionmaker
from system.db.models import BackgroundJob, BackgroundTaskFailure
from system.db.types import UTCDateTime
from tests.db.test_enqueue_many import many
from tests.db.test_jobs import LEASE, engine, put, row  # noqa: F401  (the fixture)

DAY = 86400


async def db_clock(engine: AsyncEngine) -> datetime:  # noqa: F811
    """The database's current time, read the way the queue reads it."""
    async with engine.connect() as conn:
        now: datetime | None = await conn.scalar(
            select(type_coerce(jobs.db_now(engine.dialect.name), UTCDateTime))
        )
    assert now is not None
    return now


async def set_columns(engine: AsyncEngine, job_id: int, **values: Any) -> None:  # noqa: F811
    async with engine.begin() as conn:
        await conn.execute(update(BackgroundJob).where(BackgroundJob.id == job_id).values(values))


async def page_ids(engine: AsyncEngine, limit: int) -> list[list[int]]:  # noqa: F811
    """Every page of `list_jobs`, following each page's last `(created_at, id)`."""
    pages: list[list[int]] = []
    before: tuple[datetime, int] | None = None
    async with create_sessionmaker(engine)() as session:
        while page := await jobs.list_jobs(session, limit=limit, before=before):
            pages.append([job.id for job in page])
            before = (page[-1].created_at, page[-1].id)
            assert len(pages) < 20, pages  # a page that repeats would loop forever
    return pages


# enqueue_many


async def test_enqueue_many_writes_fresh_queued_jobs_in_request_order(engine: AsyncEngine) -> None:  # noqa: F811
    before = await db_clock(engine)
    answer = await many(engine, ["a", "b", "c"])
    after = await db_clock(engine)
    ids = [job.id for job in answer]
    assert ids == sorted(ids)  # the first requested is the first claimed
    for job_id, key in zip(ids, "abc", strict=True):
        job = await row(engine, job_id)
        assert (job.task_type, job.payload, job.dedupe_key, job.max_attempts) == (
            "t",
            {"k": key},
            key,
            3,
        )
        assert (job.trigger, job.status, job.attempts, job.lease_expiries) == (
            "initial",
            "queued",
            0,
            0,
        )
        assert before <= job.created_at == job.run_after == job.updated_at <= after
    claimed = await jobs.claim(engine, owner="w", limit=3, lease_seconds=LEASE)
    assert [(job.id, job.attempt, job.trigger) for job in claimed] == [
        (i, 1, "initial") for i in ids
    ]


async def test_a_live_key_answers_its_live_job_not_a_finished_one(engine: AsyncEngine) -> None:  # noqa: F811
    [live] = await put(engine, dedupe_key="k")
    finished = await put(engine, 2)
    # Finished jobs that once held the key, written after the live one: a scan meets them last.
    for job in finished:
        await set_columns(engine, job.id, dedupe_key="k", status="done")
    assert await many(engine, ["k"]) == [jobs.Enqueued(live.id, existing=True)]


async def test_enqueue_answers_the_live_job_of_its_own_key(engine: AsyncEngine) -> None:  # noqa: F811
    # Written first, so a look-up that missed either condition would meet them first: a
    # finished job that once held the key, and a live job of another key.
    [finished] = await put(engine, dedupe_key="k")
    await set_columns(engine, finished.id, status="done")
    await put(engine, dedupe_key="other")
    [live] = await put(engine, dedupe_key="k")
    assert await put(engine, dedupe_key="k") == [jobs.Enqueued(live.id, existing=True)]


async def test_a_key_whose_live_job_finishes_mid_call_gets_a_new_job(engine: AsyncEngine) -> None:  # noqa: F811
    [old] = await put(engine, dedupe_key="k")
    finished = False

    def finish_after_the_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The live job finishes between the INSERT that met its key and the look-up after it.
        nonlocal finished
        if not finished and statement.startswith("INSERT INTO background_jobs"):
            finished = True
            conn.exec_driver_sql(
                "UPDATE background_jobs SET status = 'done' WHERE dedupe_key = 'k'"
            )

    event.listen(engine.sync_engine, "after_cursor_execute", finish_after_the_insert)
    try:
        [answer] = await many(engine, ["k"])
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", finish_after_the_insert)
    assert finished and answer.id != old.id and not answer.existing
    job = await row(engine, answer.id)
    assert (job.task_type, job.payload, job.dedupe_key, job.max_attempts, job.status) == (
        "t", {"k": "k"}, "k", 3, "queued",
    )  # fmt: skip


async def test_enqueue_gives_up_after_three_races_with_a_finishing_job(engine: AsyncEngine) -> None:  # noqa: F811
    # Each round: the insert meets a live job with the key, and the look-up finds it gone
    # (it finished in between). Three such rounds in a row end in an error, not a loop.
    statements: list[Any] = []

    async def raced(statement: Any, *_args: Any, **_kwargs: Any) -> None:
        statements.append(statement)

    async with create_sessionmaker(engine)() as session:
        session.scalar = raced  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="could not enqueue t job with key 'k'"):
            await jobs.enqueue(session, task_type="t", payload={}, max_attempts=3, dedupe_key="k")
    assert [type(s).__name__ for s in statements] == ["Insert", "Select"] * 3


async def test_keys_already_live_cost_one_look_up_per_insert_not_one_per_key(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    keys = [f"k{i}" for i in range(600)]
    first = await many(engine, keys)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        again = await many(engine, keys)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert again == [jobs.Enqueued(job.id, existing=True) for job in first]
    assert len(statements) <= 4, statements[:6]  # two chunks of 500: an INSERT and a look-up each


# list_jobs


async def test_list_jobs_is_newest_created_first_and_pages_once_through(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    newest, middle, oldest = await put(engine, 3)
    # Creation order is not id order (a transaction that began first may insert last).
    await set_columns(engine, newest.id, created_at=jobs.db_now(engine.dialect.name, 10))
    await set_columns(engine, oldest.id, created_at=jobs.db_now(engine.dialect.name, -10))
    assert await page_ids(engine, 1) == [[newest.id], [middle.id], [oldest.id]]
    assert await page_ids(engine, 2) == [[newest.id, middle.id], [oldest.id]]


async def test_list_jobs_pages_through_jobs_created_in_one_statement(engine: AsyncEngine) -> None:  # noqa: F811
    ids = [job.id for job in await many(engine, [f"k{i}" for i in range(5)])]
    assert await page_ids(engine, 2) == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]


@pytest.fixture
def local_zone_not_utc() -> Iterator[None]:
    """The process's local time zone is five hours behind UTC (a server not set to UTC)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "EST+05"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("local_zone_not_utc")
async def test_list_jobs_pages_the_same_in_any_local_time_zone(engine: AsyncEngine) -> None:  # noqa: F811
    ids = [job.id for job in await put(engine, 3)]
    assert await page_ids(engine, 1) == [[ids[2]], [ids[1]], [ids[0]]]


# count_jobs


async def test_a_job_due_now_counts_as_due_with_no_wait(engine: AsyncEngine) -> None:  # noqa: F811
    async with create_sessionmaker(engine)() as session:
        await jobs.enqueue(session, task_type="t", payload={}, max_attempts=3)
        # In the enqueuing transaction: PostgreSQL's clock has not moved, run_after == now.
        counted = await jobs.count_jobs(session)
    assert set(counted.oldest_due_seconds) == {"t"}
    if engine.dialect.name == "postgresql":
        assert counted.oldest_due_seconds["t"] == 0.0  # now() is the transaction's start
    else:
        # SQLite's clock moves between the statements; only a bound a stalled machine keeps
        assert 0.0 <= counted.oldest_due_seconds["t"] < 60


async def test_only_queued_jobs_count_towards_the_oldest_due(engine: AsyncEngine) -> None:  # noqa: F811
    dialect = engine.dialect.name
    await put(engine, 1, task_type="a")
    await put(engine, 1, task_type="b")
    claimed = await jobs.claim(engine, owner="w", limit=2, lease_seconds=LEASE)
    [waiting] = await put(engine, 1, task_type="a")
    [done] = await put(engine, 1, task_type="b")
    await set_columns(engine, done.id, status="done", finished_at=jobs.db_now(dialect))
    # Running and finished jobs that became due an hour ago are not waiting for anyone.
    for job_id in [job.id for job in claimed] + [done.id]:
        await set_columns(engine, job_id, run_after=jobs.db_now(dialect, -3600))
    await set_columns(engine, waiting.id, run_after=jobs.db_now(dialect, -60))
    async with create_sessionmaker(engine)() as session:
        counted = await jobs.count_jobs(session)
    assert set(counted.oldest_due_seconds) == {"a"}
    assert 60 <= counted.oldest_due_seconds["a"] < 120


# Timestamps written on the database's clock


async def test_a_claim_stamps_its_start_and_lease_on_the_database_clock(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    await put(engine)
    before = await db_clock(engine)
    [job] = await jobs.claim(engine, owner="a", limit=1, lease_seconds=LEASE)
    after = await db_clock(engine)
    stored = await row(engine, job.id)
    assert stored.started_at is not None and stored.lease_expires_at is not None
    # To the millisecond on SQLite too (SQLite's CURRENT_TIMESTAMP has whole seconds only).
    assert before <= stored.started_at == stored.updated_at <= after
    lease = timedelta(seconds=LEASE)
    assert before + lease <= stored.lease_expires_at <= after + lease


async def test_a_claim_that_excludes_types_still_takes_only_due_jobs(engine: AsyncEngine) -> None:  # noqa: F811
    await put(engine, delay_seconds=600)  # type "t", due in ten minutes
    [done] = await put(engine)
    await set_columns(engine, done.id, status="done")
    assert (
        await jobs.claim(engine, owner="a", limit=5, lease_seconds=LEASE, exclude_types=["x"]) == []
    )


async def claimed_a_while_ago(engine: AsyncEngine) -> jobs.ClaimedJob:  # noqa: F811
    await put(engine)
    [job] = await jobs.claim(engine, owner="a", limit=1, lease_seconds=LEASE)
    await set_columns(engine, job.id, updated_at=jobs.db_now(engine.dialect.name, -3600))
    return job


async def test_renew_moves_the_lease_and_updated_at_on_the_database_clock(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    job = await claimed_a_while_ago(engine)
    before = await db_clock(engine)
    assert await jobs.renew(engine, owner="a", jobs=[(job.id, 1)], lease_seconds=600) == {job.id}
    after = await db_clock(engine)
    stored = await row(engine, job.id)
    assert before <= stored.updated_at <= after
    assert stored.lease_expires_at is not None
    assert (
        before + timedelta(seconds=600) <= stored.lease_expires_at <= after + timedelta(seconds=600)
    )


async def test_hold_stamps_updated_at_on_the_database_clock(engine: AsyncEngine) -> None:  # noqa: F811
    job = await claimed_a_while_ago(engine)
    before = await db_clock(engine)
    async with create_sessionmaker(engine)() as session:
        assert await jobs.hold(session, job_id=job.id, attempt=1)
        await session.commit()
    after = await db_clock(engine)
    assert before <= (await row(engine, job.id)).updated_at <= after


async def test_hand_back_clears_the_lease_and_stamps_the_database_clock(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    job = await claimed_a_while_ago(engine)
    before = await db_clock(engine)
    assert await jobs.hand_back(engine, owner="a", job_id=job.id, attempt=1, delay_seconds=600)
    after = await db_clock(engine)
    stored = await row(engine, job.id)
    assert (stored.status, stored.lease_owner, stored.lease_expires_at) == ("queued", None, None)
    assert before <= stored.updated_at <= after
    assert before + timedelta(seconds=600) <= stored.run_after <= after + timedelta(seconds=600)


async def test_finish_ends_the_job_on_the_database_clock_with_its_failure(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    job = await claimed_a_while_ago(engine)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        failure = BackgroundTaskFailure(task_type="t", error_message="boom")
        session.add(failure)
        await session.commit()
    before = await db_clock(engine)
    async with sessions() as session:
        assert await jobs.finish(
            session, job_id=job.id, attempt=1, status="failed", failure_id=failure.id,
            error_type="Boom", error="boom",
        )  # fmt: skip
        await session.commit()
    after = await db_clock(engine)
    stored = await row(engine, job.id)
    assert (stored.status, stored.lease_owner, stored.lease_expires_at) == ("failed", None, None)
    assert (stored.failure_id, stored.last_error_type, stored.last_error) == (
        failure.id, "Boom", "boom",
    )  # fmt: skip
    # To the millisecond on SQLite too (SQLite's CURRENT_TIMESTAMP has whole seconds only).
    assert stored.finished_at is not None
    assert before <= stored.finished_at == stored.updated_at <= after


# delete_finished


async def finish_long_ago(engine: AsyncEngine, job_ids: list[int], seconds: float) -> None:  # noqa: F811
    """Mark the jobs done `seconds` ago, one statement each, in the order given."""
    for job_id in job_ids:
        await set_columns(
            engine,
            job_id,
            status="done",
            finished_at=jobs.db_now(engine.dialect.name, -seconds),
        )


async def remaining(engine: AsyncEngine) -> set[int]:  # noqa: F811
    async with create_sessionmaker(engine)() as session:
        return set(await session.scalars(select(BackgroundJob.id)))


async def test_retention_deletes_a_thousand_a_sweep_by_default(engine: AsyncEngine) -> None:  # noqa: F811
    await many(engine, [f"k{i}" for i in range(1001)])
    async with engine.begin() as conn:
        await conn.execute(
            update(BackgroundJob).values(
                status="done", finished_at=jobs.db_now(engine.dialect.name, -8 * DAY)
            )
        )
    assert await jobs.delete_finished(engine, older_than_days=7) == 1000
    assert await jobs.delete_finished(engine, older_than_days=7) == 1
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(BackgroundJob)) == 0


async def test_retention_with_a_limit_deletes_the_oldest_jobs_first(engine: AsyncEngine) -> None:  # noqa: F811
    first, second, third = (job.id for job in await put(engine, 3))
    # Finished newest id first: the rows' order on disk is no longer the ids' order.
    await finish_long_ago(engine, [third, second, first], 8 * DAY)
    assert await jobs.delete_finished(engine, older_than_days=7, limit=2) == 2
    assert await remaining(engine) == {third}


async def test_retention_cuts_off_exactly_at_the_age_given(engine: AsyncEngine) -> None:  # noqa: F811
    just_over, just_under = (job.id for job in await put(engine, 2))
    await finish_long_ago(engine, [just_over], 7 * DAY + 0.2)
    await finish_long_ago(engine, [just_under], 7 * DAY - 60)
    assert await jobs.delete_finished(engine, older_than_days=7) == 1
    assert await remaining(engine) == {just_under}


async def test_retention_never_deletes_a_live_job(engine: AsyncEngine) -> None:  # noqa: F811
    [queued] = await put(engine)
    # A live job carrying an old finish time (from whatever wrote it) is still live.
    await set_columns(engine, queued.id, finished_at=jobs.db_now(engine.dialect.name, -8 * DAY))
    assert await jobs.delete_finished(engine, older_than_days=7) == 0
    assert await remaining(engine) == {queued.id}


# claim


async def test_a_claim_takes_the_longest_due_first_then_the_lowest_id(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    first, second, third = (job.id for job in await put(engine, 3))
    # the newest job has waited longest; the other two are due at the same instant
    same = await db_clock(engine) - timedelta(seconds=60)
    await set_columns(engine, third, run_after=same - timedelta(seconds=60))
    for job_id in (second, first):
        await set_columns(engine, job_id, run_after=same)
    taken = [job.id for job in await jobs.claim(engine, owner="w", limit=1, lease_seconds=LEASE)]
    assert taken == [third]
    taken = [job.id for job in await jobs.claim(engine, owner="w", limit=1, lease_seconds=LEASE)]
    assert taken == [first]
