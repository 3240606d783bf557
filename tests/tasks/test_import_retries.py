"""Failed `bgg_import` jobs are retried: automatically after BGG recovers, and on demand
(issue 11, item 5). Real app on both backends, the fake BGG over a real socket."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlalchemy import select

from chaos.fakes import FaultRule
from system.db.models import BackgroundJob, BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.tasks.imports import TASK_TYPE
from tests.conftest import ADMIN_TOKEN, ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams
from tests.support.tables import rows
from tests.support.waiting import eventually
from tests.tasks.test_imports import queue, run_queued

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAIL_4242 = FaultRule(path="/thing", match={"id": "4242"}, status=503)


async def failed_import(service: ServiceUnderTest, upstreams: Upstreams) -> BackgroundTaskFailure:
    upstreams.bgg_app.engine.set_rules([FAIL_4242])
    await queue(service, 4242)
    await run_queued(service)
    (failure,) = await rows(service, BackgroundTaskFailure)
    assert (failure.task_type, failure.resolved) == (TASK_TYPE, False)
    upstreams.bgg_app.engine.clear()
    return failure


async def test_a_sweep_after_bgg_recovers_reimports_failed_imports(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(bgg_retry_attempts=1) as service:
        failure = await failed_import(service, upstreams)
        recovery = service.services.import_recovery
        assert await recovery.candidates() == [failure.id]
        done = await recovery.sweep()
        assert (done.tried, done.queued) == (1, 1)
        await service.services.settle()
        (failure,) = await rows(service, BackgroundTaskFailure)
        assert failure.resolved is True
        (game,) = await rows(service, BoardGame)
        assert game.bgg_id == 4242
        async with service.services.database.session() as session:
            runs = list(
                await session.scalars(
                    select(BackgroundTaskRun).where(BackgroundTaskRun.task_type == TASK_TYPE)
                )
            )
        assert [(r.trigger, r.outcome, r.failure_id) for r in runs] == [
            ("initial", "failure", failure.id),
            ("auto_retry", "success", failure.id),
        ]
        assert await recovery.candidates() == []  # resolved: nothing left to sweep


async def test_the_bgg_breaker_closing_after_an_outage_reimports_what_failed(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """The whole path: the failure opens the breaker, BGG heals, the probe's trial closes it
    (no import traffic), and the closing sweeps the failure into a retry job."""
    with time_machine.travel(START, tick=False) as clock:
        async with make_service(
            bgg_retry_attempts=1, bgg_breaker_fail_max=1, recovery_check_seconds=3600
        ) as service:
            await failed_import(service, upstreams)
            breaker = service.services.bgg_breaker
            assert breaker.last_known_state == "open"
            clock.shift(service.settings.bgg_breaker_reset_timeout + 1)
            probe = service.services.bgg_probe
            assert probe is not None and await probe.probe_once() is True
            assert breaker.last_known_state == "closed"
            await eventually(
                lambda: rows(service, BackgroundJob),
                "the sweep to queue the retry",
                until=lambda jobs: len(jobs) == 2,
            )
            await service.services.settle()
            (failure,) = await rows(service, BackgroundTaskFailure)
            assert failure.resolved is True
            assert [game.bgg_id for game in await rows(service, BoardGame)] == [4242]


async def test_retrying_an_import_failure_queues_it_and_answers_202(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(bgg_retry_attempts=1) as service:
        failure = await failed_import(service, upstreams)
        url = f"/api/admin/monitoring/background-failures/{failure.id}/retry"
        response = await service.client.post(url, headers=AUTH)
        assert response.status_code == 202, response.text
        body = response.json()
        job_id = body["job_id"]
        assert isinstance(job_id, int)
        # A second retry while the first is queued or running is the same job.
        again = await service.client.post(url, headers=AUTH)
        assert again.status_code in (202, 409), again.text
        if again.status_code == 202:
            assert again.json()["job_id"] == job_id
        await service.services.settle()
        (failure,) = await rows(service, BackgroundTaskFailure)
        assert failure.resolved is True
        retry_jobs = [j for j in await rows(service, BackgroundJob) if j.failure_id == failure.id]
        assert {(j.trigger, j.status) for j in retry_jobs} >= {("manual_retry", "done")}
