"""`bgg_import` jobs: one finish, one failure row without the token, waiting on an open breaker
(issue 11, item 4). Real app on both backends, the fake BGG over a real socket."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from chaos.fakes import FaultRule
from system.db import jobs
from system.db.models import (
    BackgroundJob,
    BackgroundTaskFailure,
    BackgroundTaskRun,
    BoardGame,
)
from system.tasks.classification import classify
from system.tasks.imports import TASK_TYPE, enqueue_import, run_import_job
from system.tasks.thumbnails import TASK_TYPE as THUMBNAIL_TASK
from tests.conftest import ADMIN_TOKEN, ServiceFactory, ServiceUnderTest
from tests.db.test_jobs import expire_lease
from tests.fakes import Upstreams
from tests.observability.test_metrics import sample
from tests.support.tables import rows

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKEN = "bgg-s3cret-token-4f9a"


async def queue(service: ServiceUnderTest, *bgg_ids: int) -> None:
    async with service.services.database.session() as session:
        for bgg_id in bgg_ids:
            await enqueue_import(session, bgg_id, max_attempts=3)


async def run_queued(service: ServiceUnderTest) -> None:
    service.services.pool.wake()
    await service.services.settle()


async def test_a_failed_import_leaves_one_failure_row_without_the_token(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.bgg_app.engine.set_rules([FaultRule(path="/thing", match={"id": "4242"}, status=503)])
    async with make_service(bgg_api_token=TOKEN, bgg_retry_attempts=3) as service:
        await queue(service, 4242)
        await run_queued(service)
        (failure,) = await rows(service, BackgroundTaskFailure)
        assert (failure.task_type, failure.game_id, failure.error_type, failure.retry_count) == (
            TASK_TYPE, None, "BggTransientError", 3,
        )  # fmt: skip
        assert failure.error_message == "BGG answered 503"
        assert failure.url == f"{upstreams.bgg_base_url}/thing?id=4242&stats=1"
        assert failure.resolved is False
        assert classify(failure.error_type) == "transient"
        # The token goes to BGG in the header, and nowhere into the row.
        assert service.services.bgg_http.headers["authorization"] == f"Bearer {TOKEN}"
        assert upstreams.thing_requests() == 3
        columns = BackgroundTaskFailure.__table__.columns
        assert all(TOKEN not in str(getattr(failure, c.key)) for c in columns)
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts, job.failure_id) == ("failed", 1, failure.id)
        assert job.last_error_type == "BggTransientError"
        (run,) = await rows(service, BackgroundTaskRun)
        assert (run.task_type, run.outcome, run.job_id, run.attempts) == (
            TASK_TYPE, "failure", job.id, 3,
        )  # fmt: skip
        assert run.record_id == jobs.record_id_for(job.id, 1)
        assert await rows(service, BoardGame) == []
        # The monitoring route shows it as a bgg_import failure worth retrying.
        listed = await service.admin_get(
            "/api/admin/monitoring/background-failures", task_type=TASK_TYPE
        )
        (shown,) = listed.json()["failures"]
        assert (shown["failure_class"], shown["game_id"]) == ("transient", None)


async def test_a_game_bgg_does_not_know_is_a_permanent_failure(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    await queue(service, 9_000_000)  # beyond the fake BGG's known ids: an empty <items>
    await run_queued(service)
    (failure,) = await rows(service, BackgroundTaskFailure)
    assert (failure.error_type, failure.retry_count, failure.game_id) == ("GameNotFound", 1, None)
    assert classify(failure.error_type) == "permanent"
    assert upstreams.thing_requests() == 1  # an answer: never retried
    (job,) = await rows(service, BackgroundJob)
    assert (job.status, job.failure_id) == ("failed", failure.id)


async def test_an_open_breaker_makes_the_job_wait_without_spending_an_attempt(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(bgg_breaker_reset_timeout=60) as service:
        await service.services.bgg_breaker.reset("open")
        await queue(service, 28720)
        await run_queued(service)
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
        assert job.last_error_type == "breaker_open"
        # Due when the breaker may half-open (60 s) plus at most 1 s of jitter: not now.
        assert timedelta(seconds=59) <= job.run_after - job.updated_at <= timedelta(seconds=62)
        assert await rows(service, BackgroundTaskFailure) == []
        assert await rows(service, BackgroundTaskRun) == []
        assert upstreams.thing_requests() == 0
        text = service.services.metrics.render()[0].decode()
        assert sample(text, "background_job_handbacks_total", task_type=TASK_TYPE,
                      reason="breaker_open") == 1  # fmt: skip
        # Not due: the workers leave it alone, and it is not a backlog.
        await run_queued(service)
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts) == ("queued", 0)
        async with service.services.database.session() as session:
            assert (await jobs.count_jobs(session)).oldest_due_seconds == {}


async def test_a_job_whose_failure_opens_the_breaker_waits_instead_of_failing(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    # The failure that trips the breaker (here the first, fail_max 1; in an outage the 5th in
    # a row, or a failed half-open trial) stops the client's retries: the outage cut the job
    # short, so it waits like a job the breaker turned away, and writes no failure row.
    upstreams.bgg_app.engine.set_rules([FaultRule(path="/thing", status=503)])
    async with make_service(
        bgg_breaker_fail_max=1, bgg_retry_attempts=3, bgg_breaker_reset_timeout=60
    ) as service:
        await queue(service, 4242)
        await run_queued(service)
        assert upstreams.thing_requests() == 1  # no retry into the open breaker
        assert service.services.bgg_breaker.last_known_state == "open"
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
        assert (job.last_error_type, job.failure_id) == ("breaker_open", None)
        assert timedelta(seconds=59) <= job.run_after - job.updated_at <= timedelta(seconds=62)
        assert await rows(service, BackgroundTaskFailure) == []
        assert await rows(service, BackgroundTaskRun) == []


async def test_once_the_breaker_closes_the_waiting_job_runs(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service() as service:
        await service.services.bgg_breaker.reset("open")
        await queue(service, 28720)
        await run_queued(service)
        await service.services.bgg_breaker.reset("closed")
        engine = service.services.database.engine
        async with engine.begin() as conn:  # its wait is over (the row, not the clock)
            await conn.execute(
                update(BackgroundJob).values(run_after=jobs.db_now(engine.dialect.name))
            )
        await run_queued(service)
        job = next(j for j in await rows(service, BackgroundJob) if j.task_type == TASK_TYPE)
        assert (job.status, job.attempts) == ("done", 1), (job.last_error_type, job.run_after)
        assert [g.bgg_id for g in await rows(service, BoardGame)] == [28720]


async def test_while_the_breaker_is_not_closed_one_import_is_claimed_per_poll(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        pool = service.services.pool
        await queue(service, 1, 2, 3)
        await service.services.bgg_breaker.reset("open")
        assert [job.task_type for job in await pool._claim()] == [TASK_TYPE]
        assert len(await pool._claim()) == 1
        await service.services.bgg_breaker.reset("closed")
        await queue(service, 4, 5)
        # Closed: as many as the free slots allow (the one left, and 4 and 5).
        assert len(await pool._claim()) >= 2


async def test_the_claim_limit_leaves_other_task_types_alone(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        await queue(service, 1, 2, 3)
        async with service.services.database.session() as session:
            for n in range(2):
                await jobs.enqueue(
                    session,
                    task_type=THUMBNAIL_TASK,
                    payload={"game_id": 10_000 + n, "url": "http://127.0.0.1:9/x.png"},
                    max_attempts=3,
                )
        await service.services.bgg_breaker.reset("open")
        claimed = await service.services.pool._claim()
        assert sorted(job.task_type for job in claimed) == [TASK_TYPE] + [THUMBNAIL_TASK] * 2


async def test_a_job_run_twice_is_one_game_one_run_and_one_thumbnail_job(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        services = service.services
        await queue(service, 28720)
        engine = services.database.engine
        [job] = await jobs.claim(engine, owner=services.pool.owner, limit=1, lease_seconds=30)
        for _ in range(2):  # at-least-once: the same attempt's work done twice
            await run_import_job(services.importer, services.recorder, services.pool, job, 28720)
        (game,) = await rows(service, BoardGame)
        assert game.bgg_id == 28720
        (run,) = await rows(service, BackgroundTaskRun)
        assert (run.outcome, run.game_id, run.record_id) == ("success", game.id, job.record_id)
        imports = [j for j in await rows(service, BackgroundJob) if j.task_type == TASK_TYPE]
        thumbnails = [j for j in await rows(service, BackgroundJob) if j.task_type != TASK_TYPE]
        assert [(j.status, j.attempts) for j in imports] == [("done", 1)]
        assert len(thumbnails) == 1
        # A second job for the same id (a later bulk import) while the thumbnail job waits:
        # the game is updated, the thumbnail job found by its dedupe key.
        await queue(service, 28720)
        [second] = await jobs.claim(engine, owner=services.pool.owner, limit=1, lease_seconds=30)
        await run_import_job(services.importer, services.recorder, services.pool, second, 28720)
        assert len(await rows(service, BoardGame)) == 1
        assert [j.id for j in await rows(service, BackgroundJob) if j.task_type != TASK_TYPE] == [
            thumbnails[0].id
        ]
        assert len(await rows(service, BackgroundTaskRun)) == 2


async def test_a_worker_that_lost_its_lease_keeps_nothing_of_its_import(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        services = service.services
        await queue(service, 28720)
        engine = services.database.engine
        [stale] = await jobs.claim(engine, owner=services.pool.owner, limit=1, lease_seconds=30)
        await expire_lease(engine, stale.id)
        [current] = await jobs.claim(engine, owner="other", limit=1, lease_seconds=30)
        await run_import_job(services.importer, services.recorder, services.pool, stale, 28720)
        # Its finish was fenced out: no game, no thumbnail job, no run; the job is the other's.
        assert await rows(service, BoardGame) == []
        assert await rows(service, BackgroundTaskRun) == []
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.lease_owner, job.attempts) == ("running", "other", current.attempt)


async def test_bad_payloads_fail_once_with_a_row(service: ServiceUnderTest) -> None:
    async with service.services.database.session() as session:
        for payload in ({"bgg_id": "12"}, {"bgg_id": True}, {"bgg_id": 10**9}, {"id": 1}):
            await jobs.enqueue(session, task_type=TASK_TYPE, payload=payload, max_attempts=3)
    await run_queued(service)
    found = await rows(service, BackgroundJob)
    assert [(j.status, j.attempts, j.last_error_type) for j in found] == [
        ("failed", 1, "InvalidJobPayload")
    ] * 4
    failures = await rows(service, BackgroundTaskFailure)
    assert [f.error_type for f in failures] == ["InvalidJobPayload"] * 4
    assert all(f.task_type == TASK_TYPE and f.game_id is None for f in failures)


async def test_join_waits_for_a_claim_round_that_started_after_it(
    make_service: ServiceFactory,
) -> None:
    """A round already under way may have looked before the caller's jobs were committed;
    `settle()` returning after it would leave them unrun (seen on PostgreSQL)."""
    async with make_service(background_workers_in_process=False) as service:
        gate = asyncio.Event()
        real_claim = jobs.claim
        rounds = 0

        async def claim(*args: Any, **kwargs: Any) -> list[jobs.ClaimedJob]:
            nonlocal rounds
            rounds += 1
            if rounds == 1:  # looks now, answers after the enqueue below
                await gate.wait()
                return []
            return await real_claim(*args, **kwargs)

        jobs.claim = claim
        try:
            pool = service.services.pool
            pool.start()
            await asyncio.sleep(0)  # the first round is under way
            async with service.services.database.session() as session:
                await jobs.enqueue(session, task_type=TASK_TYPE, payload={}, max_attempts=3)
            joined = asyncio.create_task(pool.join())
            await asyncio.sleep(0)
            gate.set()
            await joined
        finally:
            jobs.claim = real_claim
        (job,) = await rows(service, BackgroundJob)
        assert (job.status, job.last_error_type) == ("failed", "InvalidJobPayload")
