"""The BGG breaker recovers by itself: the recovery probe against a fake BGG on a real socket.

The breaker reads the wall clock, which time-machine moves; the fake BGG, httpx and Redis
run for real. Issue 11, item 5: after an outage with no imports the breaker stayed open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import time_machine

from chaos.fakes import BggApp, FaultRule, RunningServer, bgg_base_url
from system.bgg.client import BggClient, build_http_client
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.probe import BreakerProbe, alert_window_problem
from system.resilience.redis_store import RedisBreakerStore, breaker_key, redis_client
from system.resilience.retry import RetryPolicy
from system.resilience.store import HALF_OPEN, OPEN, BreakerStore, MemoryBreakerStore, Snapshot
from tests.conftest import ServiceFactory, make_settings
from tests.fakes import Upstreams
from tests.observability.test_metrics import sample
from tests.support.waiting import eventually

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
RESET = 60.0
PROBE_ID = 13


def fake(server: RunningServer) -> BggApp:
    """The fake BGG behind `server` (its fault engine and request log)."""
    assert isinstance(server.app, BggApp)
    return server.app


def probe_requests(server: RunningServer, bgg_id: int = PROBE_ID) -> int:
    """`thing` requests for `bgg_id` the fake BGG received."""
    records = fake(server).log.records(path="/thing")
    return sum(1 for r in records if parse_qs(r.query).get("id") == [str(bgg_id)])


@asynccontextmanager
async def probe_for(
    bgg: RunningServer, *, probe_id: int = PROBE_ID, store: BreakerStore | None = None
) -> AsyncIterator[BreakerProbe]:
    """A probe with a BGG client and breaker of its own (one worker's), over a real socket."""
    breaker = AsyncCircuitBreaker(
        "BGG API", fail_max=5, reset_timeout=RESET, store=store or MemoryBreakerStore()
    )
    http = build_http_client(connect_timeout=2, read_timeout=5)
    client = BggClient(
        base_url=bgg_base_url(bgg.url),
        http=http,
        breaker=breaker,
        policy=RetryPolicy(attempts=3, initial_wait=0, max_wait=0, deadline=10),
        request_timeout=5,
        max_id=10_000_000,
    )
    try:
        yield BreakerProbe(bgg=client, probe_id=probe_id, check_seconds=3600)
    finally:
        await http.aclose()


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


async def test_a_probe_while_bgg_still_fails_keeps_it_open(
    bgg: RunningServer, clock: time_machine.Traveller
) -> None:
    fake(bgg).engine.set_rules([FaultRule(status=503, path="/thing")])
    async with probe_for(bgg) as probe:
        breaker = probe.bgg.breaker
        await breaker.reset("open")
        clock.shift(RESET - 1)
        assert await probe.probe_once() is False
        assert probe_requests(bgg) == 0, "no probe before the reset timeout"
        clock.shift(1)
        assert await probe.probe_once() is False
        assert probe_requests(bgg) == 1, "one request, not retried"
        snap = await breaker.snapshot()
        assert snap.state == "open"
        assert snap.opened_at == START.timestamp() + RESET, "re-opened: a new reset timeout"
        assert await probe.probe_once() is False
        assert probe_requests(bgg) == 1, "nothing until that timeout has passed too"


async def test_a_probe_to_a_healthy_bgg_closes_it_and_an_unknown_id_is_an_answer(
    bgg: RunningServer, clock: time_machine.Traveller
) -> None:
    unknown = 9_000_000  # the fake answers the real empty <items>: "no such game"
    async with probe_for(bgg, probe_id=unknown) as probe:
        seen: list[tuple[str, str]] = []
        probe.bgg.breaker.on_transition(lambda t: seen.append((t.from_state, t.to_state)))
        await probe.bgg.breaker.reset("open")
        clock.shift(RESET)
        assert await probe.probe_once() is True
        assert (await probe.bgg.breaker.snapshot()).state == "closed"
        assert probe_requests(bgg, unknown) == 1
        assert seen[-2:] == [("open", "half_open"), ("half_open", "closed")]
        assert await probe.probe_once() is False, "closed: nothing to probe"
        assert probe_requests(bgg, unknown) == 1


async def test_probe_id_0_sends_nothing(
    bgg: RunningServer, clock: time_machine.Traveller, caplog: pytest.LogCaptureFixture
) -> None:
    async with probe_for(bgg, probe_id=0) as probe:
        await probe.bgg.breaker.reset("open")
        clock.shift(10 * RESET)
        assert await probe.probe_once() is False
        with caplog.at_level(logging.INFO, logger="system.resilience.probe"):
            probe.start()  # off: no loop is started either
        await probe.aclose()
    assert [r.getMessage() for r in caplog.records if r.name == "system.resilience.probe"] == [
        "BGG recovery probe off: the BGG breaker closes with the next import"
    ]
    assert fake(bgg).log.count(path="/thing") == 0
    assert (await probe.bgg.breaker.snapshot()).state == "open"


async def test_a_half_open_breaker_whose_trial_holder_died_is_probed(
    bgg: RunningServer, clock: time_machine.Traveller
) -> None:
    """A worker that took the trial and died leaves the breaker half-open; once the trial's
    slot expires the probe takes it (nobody else would without traffic)."""
    async with probe_for(bgg) as probe:
        breaker = probe.bgg.breaker
        await breaker.reset("open")
        clock.shift(RESET)
        claimed, _ = await breaker.store.try_begin_trial("dead-worker", RESET, time.time(), 30)
        assert claimed
        assert await probe.probe_once() is False, "the trial is still someone's"
        clock.shift(30)
        assert await probe.probe_once() is True
        assert (await breaker.snapshot()).state == "closed"
        assert probe_requests(bgg) == 1


async def test_two_workers_sharing_redis_send_one_probe(
    bgg: RunningServer, clock: time_machine.Traveller, redis_url: str, redis_namespace: str
) -> None:
    # The probe's request is held 0.3 s, so both workers probe while it is in flight.
    fake(bgg).engine.set_rules([FaultRule(path="/thing", delay=0.3, first_n=1)])
    key = breaker_key(redis_namespace, "BGG API")
    redis = redis_client(redis_url, timeout=1.0)
    try:
        stores = [RedisBreakerStore(redis, key, timeout=1.0) for _ in range(2)]
        async with probe_for(bgg, store=stores[0]) as a, probe_for(bgg, store=stores[1]) as b:
            await a.bgg.breaker.reset("open")
            clock.shift(RESET)
            results = await asyncio.gather(a.probe_once(), b.probe_once())
            assert sorted(results) == [False, True]
            assert probe_requests(bgg) == 1, "one trial across the workers"
            for probe in (a, b):
                assert (await probe.bgg.breaker.snapshot()).state == "closed"
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_after_an_outage_without_imports_the_service_closes_the_breaker(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """The whole service: its own periodic probe, status, gauge and alert, no import."""
    with time_machine.travel(START, tick=True) as clock:
        async with make_service(
            bgg_breaker_reset_timeout=RESET,
            recovery_check_seconds=0.05,
            alert_breaker_open_seconds=30,
            alert_check_interval_seconds=3600,  # the test checks the alerts itself
        ) as service:
            alerter = service.services.alerter
            upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
            await service.import_game(28720)
            await service.import_game(28720)  # the 5th failure opens it
            status = "/api/admin/monitoring/circuit-breaker-status"

            async def state() -> str:
                body = (await service.admin_get(status)).json()
                return f"{body['state']}, available: {body['is_available']}"

            assert await state() == "open, available: False"
            upstreams.bgg_app.engine.clear()  # BGG is back; nobody imports
            clock.shift(RESET - 20)
            await alerter.check_once()
            assert alerter.states["breaker_open"].firing, "open 40 s > 30 s"
            await asyncio.sleep(0.2)  # four checks of the probe: none may fire yet
            assert await state() == "open, available: False" and upstreams.thing_requests() == 5
            clock.shift(20)
            closed = "closed, available: True"
            await eventually(state, "the probe to close the breaker", until=closed.__eq__)
            assert probe_requests(upstreams.bgg) == 1 and upstreams.thing_requests() == 6
            metrics = (await service.client.get("/metrics")).text
            assert sample(metrics, "circuit_breaker_state", breaker="BGG API") == 0
            await alerter.check_once()
            assert not alerter.states["breaker_open"].firing, "resolved without an import"


async def test_an_outage_that_outlasts_failed_probes_still_fires_the_alert(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """Each failed probe re-opens the breaker with a new `opened_at`; the alert counts the
    outage from the first opening, or a long outage would never fire it."""
    with time_machine.travel(START, tick=False) as clock:
        async with make_service(
            bgg_breaker_reset_timeout=RESET,
            alert_breaker_open_seconds=100,
            alert_webhook_url=None,
            alert_check_interval_seconds=3600,
            recovery_check_seconds=3600,  # the test runs the probe itself
        ) as service:
            alerter, probe = service.services.alerter, service.services.bgg_probe
            assert probe is not None
            upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
            await service.import_game(28720)
            await service.import_game(28720)
            for _ in range(2):
                clock.shift(RESET + 1)
                assert await probe.probe_once() is False
                await alerter.check_once()
            assert alerter.states["breaker_open"].firing, "open 122 s of an outage > 100 s"
            upstreams.bgg_app.engine.clear()
            clock.shift(RESET + 1)
            assert await probe.probe_once() is True
            await alerter.check_once()
            assert not alerter.states["breaker_open"].firing


async def test_start_up_warns_when_the_alert_window_is_shorter_than_recovery(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    assert alert_window_problem(make_settings()) is None  # 300 > 60 + 5 + 10
    warning = "the breaker_open alert can fire for a BGG outage that has already ended"
    with caplog.at_level(logging.WARNING, logger="system.resilience.probe"):
        async with make_service(alert_breaker_open_seconds=75):
            pass
    assert "ALERT_BREAKER_OPEN_SECONDS (75) is not above" in caplog.text
    assert f"BGG_REQUEST_TIMEOUT (75): {warning}" in caplog.text


class _RivalTakesTheTrialFirst(MemoryBreakerStore):
    """One worker's view of a shared breaker in which another worker claims the half-open
    trial between this worker's look at the breaker and its own claim."""

    async def try_begin_trial(
        self, token: str, reset_timeout: float, now: float, trial_ttl: float
    ) -> tuple[bool, Snapshot]:
        if self.snapshot.state == OPEN:
            await super().try_begin_trial("rival-worker", reset_timeout, now, trial_ttl)
        return await super().try_begin_trial(token, reset_timeout, now, trial_ttl)


async def test_a_probe_that_loses_the_trial_to_another_worker_leaves_the_verdict_to_it(
    bgg: RunningServer, clock: time_machine.Traveller
) -> None:
    async with probe_for(bgg, store=_RivalTakesTheTrialFirst()) as probe:
        await probe.bgg.breaker.reset("open")
        clock.shift(RESET)
        assert await probe.probe_once() is False, "BGG did not answer this probe"
        assert probe_requests(bgg) == 0, "the breaker turned it away: nothing sent"
        assert (await probe.bgg.breaker.snapshot()).state == HALF_OPEN


async def test_a_failed_probe_is_logged_with_why(
    bgg: RunningServer, clock: time_machine.Traveller, caplog: pytest.LogCaptureFixture
) -> None:
    fake(bgg).engine.set_rules([FaultRule(status=503, path="/thing")])
    async with probe_for(bgg) as probe:
        await probe.bgg.breaker.reset("open")
        clock.shift(RESET)
        with caplog.at_level(logging.INFO, logger="system.resilience.probe"):
            assert await probe.probe_once() is False
    (record,) = [r for r in caplog.records if r.name == "system.resilience.probe"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("BGG recovery probe failed (") and "503" in message
    assert message.endswith("): the breaker stays open")


async def test_a_probe_that_closes_the_breaker_says_so(
    bgg: RunningServer, clock: time_machine.Traveller, caplog: pytest.LogCaptureFixture
) -> None:
    async with probe_for(bgg) as probe:
        await probe.bgg.breaker.reset("open")
        clock.shift(RESET)
        with caplog.at_level(logging.INFO, logger="system.resilience.probe"):
            assert await probe.probe_once() is True
    messages = [r.getMessage() for r in caplog.records if r.name == "system.resilience.probe"]
    assert messages == ["BGG recovery probe: BGG answered, the breaker is closed"]


async def test_the_probe_s_task_is_named_for_debugging_dumps(bgg: RunningServer) -> None:
    async with probe_for(bgg) as probe:
        probe.start()
        try:
            names = {task.get_name() for task in asyncio.all_tasks()}
            assert "bgg recovery probe" in names
        finally:
            await probe.aclose()
