"""The automatic retry after an outage: which failures it takes, in batches, and when it stops.

The service runs against the fake BGG and CDN over real sockets; time moves with
time-machine (the probe loop is set to wait an hour, so the tests drive the checks).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select, text

from chaos.fakes import FaultRule
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.resilience.store import OPEN, MemoryBreakerStore, Snapshot
from system.tasks.recovery import Recovery, RetryOutcome, Sweep
from tests.conftest import ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams

START = datetime(2025, 12, 20, 10, 0, tzinfo=UTC)
CDN = "Image CDN"
#: The probe loop never runs by itself: the tests call `probe_once`.
QUIET = {"recovery_check_seconds": 3600}


async def imported(service: ServiceUnderTest, bgg_id: int) -> None:
    """Import a game and wait for its thumbnail download (and any sweep it started)."""
    assert (await service.import_game(bgg_id)).status_code == 201
    await service.services.settle()


async def failure_rows(service: ServiceUnderTest) -> list[BackgroundTaskFailure]:
    async with service.services.database.session() as session:
        query = select(BackgroundTaskFailure).order_by(BackgroundTaskFailure.id)
        return list(await session.scalars(query))


async def auto_runs(service: ServiceUnderTest) -> list[BackgroundTaskRun]:
    async with service.services.database.session() as session:
        query = select(BackgroundTaskRun).where(BackgroundTaskRun.trigger == "auto_retry")
        return list(await session.scalars(query.order_by(BackgroundTaskRun.id)))


async def seed(
    service: ServiceUnderTest,
    upstreams: Upstreams,
    created: list[datetime],
    *,
    auto_retries_used: int = 0,
) -> list[int]:
    """Unresolved transient thumbnail failures recorded at `created`, each with
    `auto_retries_used` automatic retries behind it; returns their ids."""
    async with service.services.database.session() as session:
        game = BoardGame(bgg_id=900_000 + len(created) + auto_retries_used, title="Seeded")
        session.add(game)
        await session.flush()
        failures = [
            BackgroundTaskFailure(
                task_type="thumbnail_download",
                game_id=game.id,
                error_message="Network error: ConnectError",
                error_type="ConnectError",
                retry_count=3,
                url=f"{upstreams.cdn.url}/images/seeded-{n}.png",
                resolved=False,
                created_at=at,
            )
            for n, at in enumerate(created)
        ]
        session.add_all(failures)
        await session.flush()
        session.add_all(
            BackgroundTaskRun(
                record_id=str(uuid.uuid4()),
                task_type="thumbnail_download",
                game_id=game.id,
                failure_id=failure.id,
                outcome="failure",
                attempts=1,
                trigger="auto_retry",
                error_type="ConnectError",
                started_at=failure.created_at,
                finished_at=failure.created_at,
                duration_ms=1.0,
            )
            for failure in failures
            for _ in range(auto_retries_used)
        )
        return [f.id for f in failures]


def count_retries(
    recovery: Recovery,
) -> tuple[list[int], Callable[[], int]]:
    """Wrap `recovery.retry`: the ids it was called with, in order, and the most that were
    in flight at once."""
    started: list[int] = []
    in_flight = most = 0
    original: Callable[..., Awaitable[RetryOutcome]] = recovery.retry

    async def counting(failure_id: int, **kwargs: object) -> RetryOutcome:
        nonlocal in_flight, most
        started.append(failure_id)
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await original(failure_id, **kwargs)
        finally:
            in_flight -= 1

    recovery.retry = counting  # type: ignore[method-assign]
    return started, lambda: most


def outage_since(recovery: Recovery) -> datetime | None:
    """`recovery.outage_since` read through a call: mypy keeps an attribute narrowed by an
    earlier assert across the awaits that change it, so it would call a later check dead."""
    return recovery.outage_since


async def test_a_long_outage_is_retried_from_its_start(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """3.5 hours of CDN outage (longer than AUTO_RETRY_LOOKBACK_SECONDS): every failure of it,
    the ones that opened the breaker included, is retried when traffic closes the breaker."""
    with time_machine.travel(START - timedelta(seconds=10), tick=False) as clock:
        async with make_service(cdn_breaker_fail_max=2, **QUIET) as service:
            recovery = service.services.recovery
            upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
            await imported(service, 401)  # fails 10 s before the opening
            clock.shift(10)
            await imported(service, 402)  # the second failure opens the breaker
            assert recovery.outage_since == START
            clock.shift(30)
            await imported(service, 403)  # rejected by the open breaker
            clock.shift(timedelta(minutes=30))
            await imported(service, 405)  # a failed trial: re-opened, with a new opened_at
            assert recovery.outage_since == START  # the outage began at the first opening
            clock.shift(timedelta(hours=3))
            assert recovery.window_start() == START - timedelta(hours=1)

            upstreams.cdn_app.engine.clear()
            await imported(service, 406)  # its download is the trial: closes, then sweeps
            failures = await failure_rows(service)
            runs = await auto_runs(service)
            assert outage_since(recovery) is None
    assert [f.error_type for f in failures] == [
        "CdnServerError", "CdnServerError", "CircuitBreakerOpen", "CdnServerError",
    ]  # fmt: skip
    assert all(f.resolved for f in failures)
    # One run per failure: a Counter, as sorted() takes no failure_id typed int | None.
    assert Counter(r.failure_id for r in runs) == Counter(f.id for f in failures)
    assert {r.outcome for r in runs} == {"success"}


async def test_after_a_long_quiet_outage_the_probe_finds_the_failures(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """Nobody calls the CDN for hours; the periodic probe still has a failure to try, its
    success closes the breaker, and the sweep retries the rest, each exactly once."""
    with time_machine.travel(START, tick=False) as clock:
        async with make_service(cdn_breaker_fail_max=2, **QUIET) as service:
            recovery = service.services.recovery
            upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
            for bgg_id in (501, 502, 503, 504):
                await imported(service, bgg_id)
            clock.shift(timedelta(hours=5))
            assert await recovery.probe_once() is True  # a trial, still down: re-opened
            assert (await service.services.breakers[CDN].snapshot()).state == OPEN
            upstreams.cdn_app.engine.clear()
            clock.shift(timedelta(minutes=2))  # past the reset timeout of the failed trial
            assert await recovery.probe_once() is True
            await service.services.settle()
            failures = await failure_rows(service)
            runs = await auto_runs(service)
            breaker = await service.services.breakers[CDN].snapshot()
    assert breaker.state == "closed"
    assert len(failures) == 4 and all(f.resolved for f in failures)
    successes = Counter(r.failure_id for r in runs if r.outcome == "success")
    assert successes == {f.id: 1 for f in failures}  # the probe's failure only once too


async def test_the_window_reaches_back_from_the_earliest_opening_seen(
    make_service: ServiceFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        async with make_service(auto_retry_lookback_seconds=600, **QUIET) as service:
            recovery = service.services.recovery
            breaker = service.services.breakers[CDN]
            assert recovery.outage_since is None
            # No opening known (a fresh worker): the look-back from now, as before.
            assert recovery.window_start() == START - timedelta(minutes=10)

            # Another worker opened the breaker two hours ago; this one notices it now, and
            # its periodic check reads when it opened from the shared state.
            store = breaker.store
            assert isinstance(store, MemoryBreakerStore)
            opened = START - timedelta(hours=2)
            store.adopt(Snapshot(state=OPEN, opened_at=opened.timestamp(), generation=1))
            assert await recovery.probe_once() is False  # no failure waiting
            assert recovery.outage_since == opened
            clock.shift(timedelta(hours=3))
            assert recovery.window_start() == opened - timedelta(minutes=10)

            await breaker.reset("closed")
            await service.services.settle()
            assert recovery.outage_since is None
            assert recovery.window_start() == START + timedelta(hours=3, minutes=-10)


async def test_exhausted_failures_do_not_crowd_out_the_others(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """More failures that have used up AUTO_RETRY_MAX than a batch (or the old 500 cap)
    holds, all newer than three that have not: the three are retried."""
    with time_machine.travel(START, tick=False):
        async with make_service(auto_retry_max=1, **QUIET) as service:
            recovery = service.services.recovery
            fresh = await seed(
                service, upstreams, [START - timedelta(minutes=50, seconds=n) for n in range(3)]
            )
            exhausted = await seed(
                service,
                upstreams,
                [START - timedelta(minutes=40, seconds=n) for n in range(501)],
                auto_retries_used=1,
            )
            assert sorted(await recovery.candidates()) == sorted(fresh)
            assert (await recovery.sweep()).resolved == 3
            failures = {f.id: f for f in await failure_rows(service)}
            runs = Counter(r.failure_id for r in await auto_runs(service))
    assert all(failures[i].resolved for i in fresh)
    assert not any(failures[i].resolved for i in exhausted)
    assert all(runs[i] == 1 for i in fresh + exhausted)  # the exhausted were not retried


async def test_a_sweep_takes_every_candidate_in_batches_with_bounded_concurrency(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    with time_machine.travel(START, tick=False):
        async with make_service(background_concurrency=2, **QUIET) as service:
            recovery = service.services.recovery
            recovery.batch_size = 3
            # Seeded newest first, so oldest-first order is not id order.
            ids = await seed(service, upstreams, [START - timedelta(minutes=n) for n in range(7)])
            started, most_in_flight = count_retries(recovery)
            assert (await recovery.sweep()).resolved == 7
            assert (await recovery.sweep()).tried == 0  # nothing left
            failures = await failure_rows(service)
    assert started == list(reversed(ids))  # oldest first, each once, across three batches
    assert most_in_flight() == 2
    assert all(f.resolved for f in failures)


async def test_a_sweep_stops_when_the_breaker_opens_and_the_rest_waits_for_the_next(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        async with make_service(
            cdn_breaker_fail_max=2, background_concurrency=1, auto_retry_max=3, **QUIET
        ) as service:
            recovery = service.services.recovery
            recovery.batch_size = 4  # the breaker opens in the middle of the first batch
            ids = await seed(
                service, upstreams, [START - timedelta(hours=2, seconds=-n) for n in range(6)]
            )
            upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
            # As the close of an outage that began three hours ago would start it.
            assert (await recovery.sweep(since=START - timedelta(hours=3))).resolved == 0
            runs = await auto_runs(service)
            assert [(r.failure_id, r.error_type) for r in runs] == [
                (ids[0], "CdnServerError"), (ids[1], "CdnServerError"),
            ]  # fmt: skip
            # The breaker opened on the second: nothing more was sent into it, and no
            # failure spent a retry on a rejection.
            assert (await service.services.breakers[CDN].snapshot()).state == OPEN

            # A new outage, begun at the opening above, ends hours later. Its own window
            # (an hour before START) would miss the seeded failures; the cut-short sweep's
            # window is kept, so they are retried now.
            clock.shift(timedelta(hours=3))
            upstreams.cdn_app.engine.clear()
            await imported(service, 601)
            failures = {f.id: f for f in await failure_rows(service)}
    assert all(failures[i].resolved for i in ids)


_REFUSE_AUTO_RUNS = {
    "sqlite": [
        "CREATE TRIGGER refuse_auto_runs BEFORE INSERT ON background_task_runs"
        " WHEN NEW.\"trigger\" = 'auto_retry' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_auto_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.\"trigger\" = 'auto_retry' THEN RAISE EXCEPTION 'refused'; END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER refuse_auto_runs BEFORE INSERT ON background_task_runs"
        " FOR EACH ROW EXECUTE FUNCTION refuse_auto_runs()",
    ],
}
_ALLOW_AUTO_RUNS = {
    "sqlite": ["DROP TRIGGER refuse_auto_runs"],
    "postgresql": [
        "DROP TRIGGER refuse_auto_runs ON background_task_runs",
        "DROP FUNCTION refuse_auto_runs()",
    ],
}


async def _execute(service: ServiceUnderTest, statements: list[str]) -> None:
    async with service.services.database.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def test_a_retry_whose_run_is_spooled_is_not_counted_as_resolved(
    backend: str,
    make_service: ServiceFactory,
    upstreams: Upstreams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The downloads succeed but the database refuses their runs (a trigger): the records go
    to the spool. Before: the sweep said "3 of 3 succeeded" and returned 3."""
    with time_machine.travel(START, tick=False):
        async with make_service(**QUIET) as service:
            recovery = service.services.recovery
            ids = await seed(service, upstreams, [START - timedelta(minutes=n) for n in range(3)])
            await _execute(service, _REFUSE_AUTO_RUNS[backend])
            try:
                caplog.set_level(logging.INFO, logger="system.tasks.recovery")
                done = await recovery.sweep()
            finally:
                # The PostgreSQL database is shared by the session's tests.
                await _execute(service, _ALLOW_AUTO_RUNS[backend])
            failures = {f.id: f for f in await failure_rows(service)}
            spooled = service.services.recorder.spool.pending()
    assert done == Sweep(tried=3, spooled=3)
    assert spooled == 3
    assert not any(failures[i].resolved for i in ids)
    messages = [r.getMessage() for r in caplog.records if r.name == "system.tasks.recovery"]
    assert "automatic retry: 0 of 3 resolved, 0 failed again" in messages
    assert any("3 runs spooled" in m for m in messages)
