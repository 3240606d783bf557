"""`jobs.enqueue_many` (the bulk import's enqueue) keeps `enqueue`'s promises, on both
backends: one live job per dedupe key, the existing one returned, answers in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from system.db import jobs
from system.db.engine import create_sessionmaker
from system.db.models import BackgroundJob
from tests.db.test_jobs import engine, put  # noqa: F401  (the fixture)


async def many(engine: AsyncEngine, keys: list[str]) -> list[jobs.Enqueued]:  # noqa: F811
    async with create_sessionmaker(engine)() as session:
        out = await jobs.enqueue_many(
            session, task_type="t", jobs=[({"k": k}, k) for k in keys], max_attempts=3
        )
        await session.commit()
    return out


async def test_new_live_and_finished_keys_in_request_order(engine: AsyncEngine) -> None:  # noqa: F811
    live, finished = await put(engine, 2, dedupe_key=None)
    async with create_sessionmaker(engine)() as session:
        await session.execute(
            update(BackgroundJob).where(BackgroundJob.id == live.id).values(dedupe_key="b")
        )
        await session.execute(
            update(BackgroundJob)
            .where(BackgroundJob.id == finished.id)
            .values(dedupe_key="c", status="done")
        )
        await session.commit()
    answer = await many(engine, ["a", "b", "c", "d"])
    assert [job.existing for job in answer] == [False, True, False, False]
    assert answer[1].id == live.id
    assert finished.id not in {job.id for job in answer}  # a done job's key is free again
    assert len({job.id for job in answer}) == 4
    async with create_sessionmaker(engine)() as session:
        payloads: dict[int, dict[str, Any]] = dict(
            (await session.execute(select(BackgroundJob.id, BackgroundJob.payload))).all()
        )
    assert [payloads[job.id] for job in answer] == [
        {"k": "a"}, {"i": 0}, {"k": "c"}, {"k": "d"},
    ]  # fmt: skip


async def test_more_than_one_insert_worth_of_jobs(engine: AsyncEngine) -> None:  # noqa: F811
    keys = [f"k{i}" for i in range(1234)]
    first = await many(engine, keys)
    again = await many(engine, list(reversed(keys)))
    assert [job.id for job in again] == [job.id for job in reversed(first)]
    assert all(job.existing for job in again) and not any(job.existing for job in first)
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(BackgroundJob)) == 1234
