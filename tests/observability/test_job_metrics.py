"""The job queue on `/metrics`: jobs by status, the oldest due job's wait, claims, lease
take-overs and hand-backs; and the `job_backlog` alert through a real webhook receiver.

Real app, real database (both backends), the fake BGG and CDN over real sockets. Ages are
made by moving a row's `run_after` on the database's own clock (the clock every job age is
measured on), never by waiting.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text as sql_text
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from chaos.fakes import FaultRule, RunningServer
from system.db import jobs
from system.db.engine import create_engine, create_sessionmaker
from system.db.models import BackgroundJob
from system.tasks.thumbnails import TASK_TYPE
from tests.conftest import ADMIN_TOKEN, ServiceFactory, ServiceUnderTest
from tests.db.test_jobs import expire_lease
from tests.fakes import Upstreams
from tests.observability.test_alerts import Receiver, receiver  # noqa: F401 (fixture)
from tests.observability.test_metrics import sample
from tests.services import serve
from tests.support.waiting import eventually, eventually_sync


async def move_run_after(engine: AsyncEngine, job_id: int, seconds: float) -> None:
    """Make a queued job due `seconds` from now on the database's clock (negative: overdue)."""
    at = jobs.db_now(engine.dialect.name, seconds)
    async with engine.begin() as conn:
        await conn.execute(
            update(BackgroundJob).where(BackgroundJob.id == job_id).values(run_after=at)
        )


async def queued_ids(service: ServiceUnderTest) -> list[int]:
    async with service.services.database.session() as session:
        page = await session.execute(
            BackgroundJob.__table__.select()
            .where(BackgroundJob.status == "queued")
            .order_by(BackgroundJob.id)
        )
        return [row.id for row in page]


async def metrics_text(service: ServiceUnderTest) -> str:
    return (await service.client.get("/metrics")).text


def job_gauges(text: str) -> dict[str, float]:
    return {
        status: sample(text, "background_jobs", task_type=TASK_TYPE, status=status)
        for status in jobs.JOB_STATUSES
    }


async def test_gauges_count_jobs_by_status_and_the_oldest_due_wait(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        pool = service.services.pool
        gauges = service.services.job_gauges
        assert gauges is not None
        engine = service.services.database.engine
        # One job done: the pool runs it, then stops claiming again.
        assert (await service.import_game(1)).status_code == 201
        pool.start()
        await pool.join()
        await pool.drain(0)
        # Three queued with the pool stopped; a worker takes one and holds it (running).
        for bgg_id in (2, 3, 28720):
            assert (await service.import_game(bgg_id)).status_code == 201
        [claimed] = await jobs.claim(engine, owner="dead", limit=1, lease_seconds=30)
        overdue, held_back = [i for i in await queued_ids(service) if i != claimed.id]
        await move_run_after(engine, overdue, -600)
        # Not due (an open breaker's wait, say): counted as queued, but no backlog.
        await move_run_after(engine, held_back, +3600)

        await gauges.refresh()
        text = await metrics_text(service)
        assert job_gauges(text) == {"queued": 2, "running": 1, "done": 1, "failed": 0}
        oldest = sample(text, "background_job_oldest_queued_seconds", task_type=TASK_TYPE)
        assert 600 <= oldest < 700

        # Everything runs: the counts move and the wait reads 0, not its last value.
        await expire_lease(engine, claimed.id)
        await move_run_after(engine, held_back, 0)
        pool.start()
        await pool.join()
        await gauges.refresh()
        text = await metrics_text(service)
        assert job_gauges(text) == {"queued": 0, "running": 0, "done": 4, "failed": 0}
        assert sample(text, "background_job_oldest_queued_seconds", task_type=TASK_TYPE) == 0


async def test_the_api_refreshes_the_gauges_every_job_metrics_seconds(
    make_service: ServiceFactory,
) -> None:
    async with make_service(
        background_workers_in_process=False, job_metrics_seconds=0.05
    ) as service:
        assert (await service.import_game(28720)).status_code == 201
        text = await eventually(
            lambda: metrics_text(service),
            "the job gauges to show the queued job",
            until=lambda t: job_gauges(t)["queued"] == 1,
        )
        assert job_gauges(text)["done"] == 0


async def test_claims_and_lease_take_overs_are_counted(make_service: ServiceFactory) -> None:
    async with make_service(background_workers_in_process=False) as service:
        assert (await service.import_game(28720)).status_code == 201
        assert (await service.import_game(1)).status_code == 201
        engine = service.services.database.engine
        # A worker claims one job and dies holding it; its lease runs out.
        [claimed] = await jobs.claim(engine, owner="dead", limit=1, lease_seconds=30)
        await expire_lease(engine, claimed.id)
        pool = service.services.pool
        pool.start()
        await pool.join()
        text = await metrics_text(service)
    # The pool claimed both: one fresh, one taken over (the dead worker's claim was not ours).
    assert sample(text, "background_job_claims_total", task_type=TASK_TYPE) == 2
    assert sample(text, "background_job_lease_expiries_total", task_type=TASK_TYPE) == 1


async def test_jobs_handed_back_at_shutdown_are_counted(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0) as service:
        assert (await service.import_game(28720)).status_code == 201
        await eventually(upstreams.image_requests, "the thumbnail download to start")
        metrics = service.services.metrics
    # The lifespan ended: the running download was handed back to the queue.
    text = metrics.render()[0].decode()
    assert sample(text, "background_job_handbacks_total", task_type=TASK_TYPE, reason="drain") == 1
    assert sample(text, "background_job_claims_total", task_type=TASK_TYPE) == 1
    assert sample(text, "background_job_lease_expiries_total", task_type=TASK_TYPE) == 0


async def test_job_backlog_fires_once_and_resolves_once(
    make_service: ServiceFactory,
    receiver: tuple[Receiver, RunningServer],  # noqa: F811 (the fixture)
) -> None:
    hook, server = receiver
    async with make_service(
        background_workers_in_process=False,
        alert_webhook_url=f"{server.url}/hook",
        alert_check_interval_seconds=3600,
        alert_job_backlog_seconds=300,
    ) as service:
        alerter = service.services.alerter
        engine = service.services.database.engine
        assert (await service.import_game(28720)).status_code == 201
        [job_id] = await queued_ids(service)
        assert await alerter.check_once() == []  # queued a moment ago

        await move_run_after(engine, job_id, -3600)
        await move_run_after(engine, job_id, +60)  # held back (an open breaker): not due
        assert await alerter.check_once() == []

        await move_run_after(engine, job_id, -400)  # due for 400 s and nobody claims it
        assert await alerter.check_once() == ["job_backlog:firing"]
        assert await alerter.check_once() == []  # still waiting: no second message
        listed = (await service.admin_get("/api/admin/monitoring/alerts")).json()
        assert {a["rule"]: a["firing"] for a in listed}["job_backlog"] is True

        service.services.pool.start()  # a worker comes
        await service.services.pool.join()
        assert await alerter.check_once() == ["job_backlog:resolved"]
        assert await alerter.check_once() == []
    assert hook.statuses() == [("job_backlog", "firing"), ("job_backlog", "resolved")]
    firing = hook.messages[0]["alert"]
    assert 400 <= firing["value"] < 500
    assert firing["threshold"] == 300
    assert TASK_TYPE in firing["summary"]


async def _enqueue(url: str, n: int) -> None:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            for i in range(n):
                await jobs.enqueue(session, task_type="t", payload={"i": i}, max_attempts=3)
            await session.commit()
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_two_workers_report_the_table_once(tmp_path: Path) -> None:
    """`serve --workers 2`: both refresh the same table; the gauge is its count, not twice it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    env = {
        "DATABASE_URL": url,
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
        "BACKGROUND_WORKERS_IN_PROCESS": "false",  # nothing runs the jobs: they stay queued
        "JOB_METRICS_SECONDS": "0.1",
    }
    with serve(env, tmp_path, workers=2) as process:
        asyncio.run(_enqueue(url, 3))

        def queued_series() -> list[str]:
            text = httpx.get(f"{process.url}/metrics").text
            return [
                line
                for line in text.splitlines()
                if line.startswith("background_jobs{") and 'status="queued"' in line
            ]

        eventually_sync(queued_series, "the queued jobs on /metrics", until=lambda s: len(s) > 0)
        scrapes = [queued_series() for _ in range(6)]  # new connections: both workers answer
    for series in scrapes:
        (line,) = series  # one series, no per-process copies
        assert float(line.rsplit(" ", 1)[1]) == 3


async def rename_jobs_table(engine: AsyncEngine, old: str, new: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sql_text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_an_unreadable_job_table_neither_resolves_the_alert_nor_zeroes_the_gauges(
    make_service: ServiceFactory,
    receiver: tuple[Receiver, RunningServer],  # noqa: F811 (the fixture)
) -> None:
    hook, server = receiver
    async with make_service(
        background_workers_in_process=False,
        alert_webhook_url=f"{server.url}/hook",
        alert_check_interval_seconds=3600,
    ) as service:
        alerter = service.services.alerter
        gauges = service.services.job_gauges
        assert gauges is not None
        engine = service.services.database.engine
        assert (await service.import_game(28720)).status_code == 201
        [job_id] = await queued_ids(service)
        await move_run_after(engine, job_id, -400)
        assert await alerter.check_once() == ["job_backlog:firing"]
        assert await gauges.refresh() is not None

        # The count query fails (here: its table is gone for a moment).
        await rename_jobs_table(engine, "background_jobs", "background_jobs_away")
        try:
            assert await alerter.check_once() == []
            assert alerter.states["job_backlog"].firing
            assert await gauges.refresh() is None
            text_now = await metrics_text(service)
        finally:
            await rename_jobs_table(engine, "background_jobs_away", "background_jobs")
    assert job_gauges(text_now)["queued"] == 1
    assert sample(text_now, "background_job_oldest_queued_seconds", task_type=TASK_TYPE) >= 400
    assert hook.statuses() == [("job_backlog", "firing")]
