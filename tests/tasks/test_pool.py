"""Durable background work: jobs survive shutdown and dead workers, and end exactly once.

Real app, real database (both backends), the fake CDN over a real socket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from chaos.fakes import FaultRule
from system.db import jobs
from system.db.models import BackgroundJob, BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.tasks.thumbnails import TASK_TYPE
from tests.conftest import ServiceFactory, ServiceUnderTest
from tests.db.test_jobs import expire_lease
from tests.fakes import Upstreams
from tests.support.tables import rows
from tests.support.waiting import eventually


async def test_an_import_commits_its_thumbnail_job_and_a_worker_runs_it(
    service: ServiceUnderTest,
) -> None:
    game = (await service.import_game(28720)).json()
    await service.services.settle()
    (job,) = await rows(service, BackgroundJob)
    assert (job.task_type, job.status, job.attempts, job.lease_owner) == (
        TASK_TYPE, "done", 1, None,
    )  # fmt: skip
    assert job.payload["game_id"] == game["id"]
    (run,) = await rows(service, BackgroundTaskRun)
    assert (run.job_id, run.outcome, run.record_id) == (
        job.id, "success", jobs.record_id_for(job.id, 1),
    )  # fmt: skip


async def test_shutdown_hands_unfinished_jobs_back_and_a_restart_runs_them(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0.1) as service:
        assert (await service.import_game(28720)).status_code == 201
        await eventually(upstreams.image_requests, "the thumbnail download to start")
        spool = service.services.recorder.spool
    # The lifespan ended: the job is back in the queue, its attempt given back; nothing else.
    assert spool.pending() == 0
    upstreams.cdn_app.engine.clear()
    async with make_service() as restarted:
        (job,) = await rows(restarted, BackgroundJob)
        assert (job.status, job.attempts, job.last_error_type) in {
            ("queued", 0, "drain"), ("running", 1, None), ("done", 1, None),
        }  # fmt: skip
        await restarted.services.settle()
        (job,) = await rows(restarted, BackgroundJob)
        assert (job.status, job.attempts) == ("done", 1)
        assert await rows(restarted, BackgroundTaskFailure) == []
        (run,) = await rows(restarted, BackgroundTaskRun)
        assert run.outcome == "success"
        (game,) = await rows(restarted, BoardGame)
        assert game.thumbnail_path is not None and Path(game.thumbnail_path).exists()


async def test_a_dead_workers_job_is_taken_over_after_its_lease(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        assert (await service.import_game(28720)).status_code == 201
        engine = service.services.database.engine
        # A worker claims it and dies: nothing hands it back, its lease runs out.
        [claimed] = await jobs.claim(engine, owner="dead", limit=1, lease_seconds=30)
        pool = service.services.pool
        pool.start()
        await pool.join()
        assert (await rows(service, BackgroundJob))[0].status == "running"  # lease still held
        await expire_lease(engine, claimed.id)
        await pool.join()
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts, job.lease_expiries) == ("done", 2, 1)
        (run,) = await rows(service, BackgroundTaskRun)
        assert run.record_id == jobs.record_id_for(job.id, 2)


async def test_a_job_whose_lease_was_lost_stops_and_records_nothing(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0) as service:
        assert (await service.import_game(28720)).status_code == 201
        await eventually(upstreams.image_requests, "the thumbnail download to start")
        pool = service.services.pool
        (job,) = await rows(service, BackgroundJob)
        engine = service.services.database.engine
        await expire_lease(engine, job.id)
        [taken] = await jobs.claim(engine, owner="other", limit=1, lease_seconds=30)
        await pool.renew_once()
        await eventually(lambda: pool.running, "the lost job to stop", until=lambda n: n == 0)
        assert await rows(service, BackgroundTaskRun) == []
        (job,) = await rows(service, BackgroundJob)
        assert (job.lease_owner, job.attempts) == ("other", taken.attempt)


async def test_a_worker_that_cannot_renew_stops_before_its_lease_ends(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0) as service:
        pool = service.services.pool
        now = [1000.0]
        pool._monotonic = lambda: now[0]  # the injected clock
        assert (await service.import_game(28720)).status_code == 201
        await eventually(upstreams.image_requests, "the thumbnail download to start")
        real_engine = service.services.database.engine

        async def refused(*_args: object, **_kwargs: object) -> set[int]:
            raise ConnectionRefusedError("database down")

        renew, jobs.renew = jobs.renew, refused
        try:
            now[0] += pool.lease_seconds - pool.lease_margin - 1
            await pool.renew_once()
            assert pool.running == 1  # still within its deadline
            now[0] += 2
            await pool.renew_once()
        finally:
            jobs.renew = renew
        await eventually(lambda: pool.running, "the job to stop", until=lambda n: n == 0)
        assert real_engine is service.services.database.engine


async def test_twenty_concurrent_imports_of_one_game_queue_one_download(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0) as service:
        answers = await asyncio.gather(*(service.import_game(28720) for _ in range(20)))
        assert {answer.status_code for answer in answers} <= {200, 201}
        (job,) = await rows(service, BackgroundJob)
        assert job.task_type == TASK_TYPE


async def test_a_job_with_a_bad_payload_fails_once_with_a_row(service: ServiceUnderTest) -> None:
    async with service.services.database.session() as session:
        await jobs.enqueue(session, task_type=TASK_TYPE, payload={"game_id": "x"}, max_attempts=3)
        await jobs.enqueue(session, task_type="no_such_task", payload={}, max_attempts=3)
    service.services.pool.wake()
    await service.services.settle()
    bad, unknown = await rows(service, BackgroundJob)
    assert (bad.status, bad.attempts, bad.last_error_type) == ("failed", 1, "InvalidJobPayload")
    assert (unknown.status, unknown.last_error_type) == ("failed", "UnknownTaskType")
    failures = {f.id: f.error_type for f in await rows(service, BackgroundTaskFailure)}
    assert len(failures) == 2  # run concurrently: either may be written first
    assert bad.failure_id is not None and unknown.failure_id is not None
    assert (failures[bad.failure_id], failures[unknown.failure_id]) == (
        "InvalidJobPayload", "UnknownTaskType",
    )  # fmt: skip


async def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False, job_max_attempts=2) as service:
        assert (await service.import_game(28720)).status_code == 201
        engine = service.services.database.engine
        for owner in ("dead-1", "dead-2"):
            [claimed] = await jobs.claim(engine, owner=owner, limit=1, lease_seconds=30)
            await expire_lease(engine, claimed.id)
        pool = service.services.pool
        pool.start()
        await pool.join()
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts, job.lease_expiries) == ("failed", 3, 2)
        (failure,) = await rows(service, BackgroundTaskFailure)
        assert failure.error_type == "LeaseExpired"
        assert job.failure_id == failure.id


async def test_api_only_replica_queues_but_never_claims(make_service: ServiceFactory) -> None:
    async with make_service(background_workers_in_process=False) as service:
        assert (await service.import_game(28720)).status_code == 201
        assert not service.services.pool.started
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts) == ("queued", 0)
