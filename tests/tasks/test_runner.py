"""The task runner: bounded concurrency, and a shutdown that loses nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from chaos.fakes import FaultRule
from system.db.models import BackgroundTaskFailure
from system.tasks.runner import TaskRunner
from tests.conftest import ServiceFactory
from tests.fakes import Upstreams
from tests.support.waiting import eventually


async def test_at_most_concurrency_tasks_run_at_once() -> None:
    runner = TaskRunner(concurrency=3)
    running = peak = 0
    release = asyncio.Event()

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    for n in range(10):
        runner.submit(work(), name=f"w{n}")
    await eventually(lambda: runner.running, "the first tasks to start", until=lambda n: n >= 3)
    assert (peak, runner.running, runner.pending) == (3, 3, 10)
    release.set()
    await runner.join()
    assert runner.pending == 0


async def test_shutdown_drains_and_records_what_it_had_to_cut(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0.1) as service:
        assert (await service.import_game(28720)).status_code == 201
        await eventually(upstreams.image_requests, "the thumbnail download to start")
        spool = service.services.recorder.spool
    # The lifespan ended: the hanging download was cancelled and spooled, not lost.
    assert spool.pending() == 1
    upstreams.cdn_app.engine.clear()
    async with make_service() as restarted:
        async with restarted.services.database.session() as session:
            (failure,) = await session.scalars(select(BackgroundTaskFailure))
    assert failure.error_type == "ShutdownCancelled"
    assert spool.pending() == 0


async def test_a_download_cut_short_records_the_attempt_it_was_in(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    # Attempt 1 times out (retried at once: waits are not slept), attempt 2 hangs until shutdown.
    upstreams.cdn_app.engine.set_rules([FaultRule(delay=5, first_n=1), FaultRule(hang=True)])
    async with make_service(background_drain_seconds=0.1, thumbnail_timeout=0.2) as service:
        assert (await service.import_game(28720)).status_code == 201
        await eventually(
            upstreams.image_requests, "the second download attempt", until=lambda n: n >= 2
        )
    upstreams.cdn_app.engine.clear()
    async with make_service() as restarted:
        async with restarted.services.database.session() as session:
            (failure,) = await session.scalars(select(BackgroundTaskFailure))
    assert (failure.error_type, failure.retry_count) == ("ShutdownCancelled", 2)
