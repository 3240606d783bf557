"""The service's own alerts, delivered to a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chaos.fakes import FaultRule, RunningServer, run_in_thread
from system.config import Settings
from system.db.database import Database
from system.observability.alerts import CLAIM_SECONDS, Alerter, RequestWindow
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.redis_store import redis_client
from system.resilience.store import OPEN, MemoryBreakerStore, Snapshot
from tests.conftest import ServiceFactory, ServiceUnderTest, make_settings
from tests.fakes import Upstreams
from tests.services import redis_server


class Receiver:
    """A Slack-style incoming webhook that keeps what it is sent (and can refuse it)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.refuse = False
        #: Refuse this many posts, then take them again.
        self.refuse_next = 0
        #: Called (in the receiver's thread) with each post, before it is answered.
        self.during_post: Callable[[], object] | None = None

        async def hook(request: Request) -> JSONResponse:
            if self.during_post is not None:
                self.during_post()
            if self.refuse or self.refuse_next:
                self.refuse_next = max(0, self.refuse_next - 1)
                self.refused.append(await request.json())
                return JSONResponse({"ok": False}, status_code=500)
            self.messages.append(await request.json())
            return JSONResponse({"ok": True})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def statuses(self) -> list[tuple[str, str]]:
        return [(m["alert"]["rule"], m["alert"]["status"]) for m in self.messages]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, RunningServer]]:
    hook = Receiver()
    with run_in_thread(hook.app) as server:
        yield hook, server


def test_request_window_counts_only_its_window() -> None:
    now = [1000.0]
    window = RequestWindow(60, clock=lambda: now[0])
    for _ in range(98):
        window.observe(200)
    window.observe(500)
    window.observe(503)
    assert window.totals() == (100, 2)
    now[0] += 61
    window.observe(200)
    assert window.totals() == (1, 0)


async def test_breaker_open_fires_once_and_resolves_once(
    make_service: ServiceFactory, upstreams: Upstreams, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    # The breaker's reset timeout passes on the clock the breaker reads, not in real time.
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        async with make_service(
            alert_webhook_url=f"{server.url}/hook",
            alert_breaker_open_seconds=0,
            bgg_breaker_reset_timeout=60,
            alert_check_interval_seconds=3600,  # the test drives the checks itself
        ) as service:
            await _open_then_close_the_breaker(service, upstreams, hook, clock)
    assert hook.statuses() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


async def _open_then_close_the_breaker(
    service: ServiceUnderTest, upstreams: Upstreams, hook: Receiver, clock: time_machine.Traveller
) -> None:
    alerter = service.services.alerter
    assert await alerter.check_once() == []
    upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
    await service.import_game(13)
    await service.import_game(13)
    assert await alerter.check_once() == ["breaker_open:firing"]
    assert await alerter.check_once() == []  # still open: no second message
    (message,) = hook.messages
    assert message["text"].startswith(":rotating_light:")
    assert "BGG API" in message["alert"]["summary"]
    assert message["attachments"][0]["color"] == "#d00000"
    listed = (await service.admin_get("/api/admin/monitoring/alerts")).json()
    assert {a["rule"]: a["firing"] for a in listed}["breaker_open"] is True

    upstreams.bgg_app.engine.clear()
    assert (await service.import_game(28720)).status_code == 503  # still open
    clock.shift(61)  # past the reset timeout
    assert (await service.import_game(28720)).status_code == 201  # trial closes it
    assert await alerter.check_once() == ["breaker_open:resolved"]
    assert await alerter.check_once() == []


async def test_unresolved_failures_and_error_rate(
    make_service: ServiceFactory, upstreams: Upstreams, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    async with make_service(
        alert_webhook_url=f"{server.url}/hook",
        alert_unresolved_threshold=2,
        alert_error_rate_min_requests=10,
        alert_check_interval_seconds=3600,
    ) as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(status=404)])
        for bgg_id in (1, 2, 3):
            await service.import_game(bgg_id)
        await service.services.settle()
        window = service.services.alerter.window
        for _ in range(20):
            window.observe(200)
        window.observe(500)
        sent = await service.services.alerter.check_once()
        assert sent == ["error_rate:firing", "unresolved_failures:firing"]
    error_rate = next(m["alert"] for m in hook.messages if m["alert"]["rule"] == "error_rate")
    assert error_rate["value"] == pytest.approx(1 / 24)  # 3 imports + 21 requests, 1 failed
    assert error_rate["threshold"] == 0.01


async def test_an_undelivered_alert_is_sent_at_the_next_check(
    make_service: ServiceFactory, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    async with make_service(
        alert_webhook_url=f"{server.url}/hook",
        alert_unresolved_threshold=0,
        alert_check_interval_seconds=3600,
    ) as service:
        from system.db.models import BackgroundTaskFailure

        async with service.services.database.session() as session:
            session.add(BackgroundTaskFailure(task_type="thumbnail_download", error_message="x"))
        hook.refuse = True
        assert await service.services.alerter.check_once() == []
        hook.refuse = False
        assert await service.services.alerter.check_once() == ["unresolved_failures:firing"]
    assert hook.statuses() == [("unresolved_failures", "firing")]


async def test_the_open_breakers_503s_do_not_count_as_errors(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(bgg_retry_attempts=1) as service:
        upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
        for _ in range(20):
            await service.import_game(13)
        requests, errors = service.services.alerter.window.totals()
    assert requests == 20
    assert errors == 5  # the five 502s that opened the breaker; the fifteen 503s are designed


class Workers:
    """Alerters as several workers build them: one shared breaker state (in production it
    is shared through Redis), their own request windows, one Redis (or none)."""

    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self.settings = settings
        self.redis = redis
        self.store = MemoryBreakerStore()
        self.breaker = AsyncCircuitBreaker(
            "Image CDN", fail_max=1, reset_timeout=60, store=self.store
        )
        self.database = Database(settings.database_url.get_secret_value())
        self.alerters: list[Alerter] = []

    def worker(self, redis: Redis | None = None) -> Alerter:
        """One more worker; on a Redis client of its own if given one."""
        alerter = Alerter(
            settings=self.settings,
            window=RequestWindow(300),
            breakers=[self.breaker],
            database=self.database,
            redis=redis or self.redis,
        )
        self.alerters.append(alerter)
        return alerter

    def open_breaker(self) -> None:
        """Open for ten minutes: past any ALERT_BREAKER_OPEN_SECONDS the tests set."""
        self.store.adopt(Snapshot(state=OPEN, opened_at=time.time() - 600, generation=1))

    def close_breaker(self) -> None:
        self.store.adopt(Snapshot(generation=2))

    async def aclose(self) -> None:
        for alerter in self.alerters:
            await alerter.aclose()
        await self.database.close()


@pytest.fixture
async def shared_redis(redis_url: str, redis_namespace: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url, timeout=2.0)
    yield client
    keys = [key async for key in client.scan_iter(f"{redis_namespace}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@asynccontextmanager
async def workers(
    settings: Settings, server: RunningServer, redis: Redis | None, namespace: str = "test"
) -> AsyncIterator[Workers]:
    built = Workers(
        make_settings(
            database_url=settings.database_url,
            alert_webhook_url=f"{server.url}/hook",
            alert_breaker_open_seconds=60,
            redis_namespace=namespace,
        ),
        redis,
    )
    try:
        yield built
    finally:
        await built.aclose()


async def test_a_refused_resolution_is_sent_at_the_next_check_by_any_worker(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    async with workers(settings, server, shared_redis, redis_namespace) as built:
        a, b = built.worker(), built.worker()
        built.open_breaker()
        assert await a.check_once() == ["breaker_open:firing"]
        assert await b.check_once() == []  # a delivered it: nothing to send, nothing "sent"

        built.close_breaker()
        hook.refuse_next = 1
        assert await a.check_once() == []  # refused
        assert [m["alert"]["status"] for m in hook.refused] == ["resolved"]
        assert await b.check_once() == ["breaker_open:resolved"]  # the next check, b's
        assert await a.check_once() == []  # b delivered it
        assert await b.check_once() == []
    assert hook.statuses() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


async def test_a_refused_message_is_sent_again_by_the_same_worker(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    async with workers(settings, server, shared_redis, redis_namespace) as built:
        a = built.worker()
        built.open_breaker()
        hook.refuse_next = 1
        assert await a.check_once() == []
        assert await a.check_once() == ["breaker_open:firing"]
        built.close_breaker()
        hook.refuse_next = 1
        assert await a.check_once() == []
        assert await a.check_once() == ["breaker_open:resolved"]
        assert await a.check_once() == []
    assert hook.statuses() == [("breaker_open", "firing"), ("breaker_open", "resolved")]
    assert [m["alert"]["status"] for m in hook.refused] == ["firing", "resolved"]


async def test_workers_checking_at_once_send_each_message_once(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    async with workers(settings, server, shared_redis, redis_namespace) as built:
        alerters = [built.worker() for _ in range(4)]

        async def all_check() -> list[str]:
            rounds = await asyncio.gather(*(alerter.check_once() for alerter in alerters))
            return [message for sent in rounds for message in sent]

        built.open_breaker()
        hook.refuse_next = 1  # whoever posts first is refused; another check sends it again
        assert await all_check() + await all_check() == ["breaker_open:firing"]
        assert len(hook.refused) == 1
        assert await all_check() == []
        built.close_breaker()
        assert await all_check() == ["breaker_open:resolved"]
        assert await all_check() == []
    assert hook.statuses() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


async def test_without_redis_a_refused_resolution_is_sent_again(
    settings: Settings, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    async with workers(settings, server, None) as built:
        a = built.worker()
        built.open_breaker()
        assert await a.check_once() == ["breaker_open:firing"]
        built.close_breaker()
        hook.refuse_next = 1
        assert await a.check_once() == []
        assert await a.check_once() == ["breaker_open:resolved"]
        assert await a.check_once() == []
    assert hook.statuses() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


async def _never_delivered_firing(
    settings: Settings, hook: Receiver, server: RunningServer, redis: Redis | None, namespace: str
) -> None:
    async with workers(settings, server, redis, namespace) as built:
        a = built.worker()
        built.open_breaker()
        hook.refuse = True
        assert await a.check_once() == []
        built.close_breaker()
        hook.refuse = False
        assert await a.check_once() == []  # nothing to resolve: the firing never arrived
        assert await a.check_once() == []
    assert hook.messages == []


async def test_no_resolution_for_a_firing_message_never_delivered(
    settings: Settings, receiver: tuple[Receiver, RunningServer]
) -> None:
    await _never_delivered_firing(settings, *receiver, None, "test")


async def test_no_resolution_for_a_firing_message_never_delivered_redis(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_namespace: str,
) -> None:
    await _never_delivered_firing(settings, *receiver, shared_redis, redis_namespace)


def _alert_keys(namespace: str) -> tuple[str, str]:
    """The breaker_open rule's delivered status and claim keys."""
    return f"{namespace}:alert:breaker_open", f"{namespace}:alert:breaker_open:sending"


async def test_the_claim_is_held_with_its_timeout_while_posting_and_released_after(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_url: str,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    delivered, claim = _alert_keys(redis_namespace)
    seen: list[tuple[bool, int]] = []
    with redis.Redis.from_url(redis_url) as direct:
        hook.during_post = lambda: seen.append((direct.exists(claim) == 1, direct.pttl(claim)))
        async with workers(settings, server, shared_redis, redis_namespace) as built:
            a = built.worker()
            built.open_breaker()
            assert await a.check_once() == ["breaker_open:firing"]
    [(held, ttl_ms)] = seen
    assert held
    # Set to CLAIM_SECONDS as the post began (a second's slack for a slow machine).
    assert CLAIM_SECONDS * 1000 - 1000 < ttl_ms <= CLAIM_SECONDS * 1000
    assert await shared_redis.exists(claim) == 0
    assert await shared_redis.get(delivered) == b"firing"


async def test_another_workers_claim_is_waited_for_and_left_alone(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    _delivered, claim = _alert_keys(redis_namespace)
    async with workers(settings, server, shared_redis, redis_namespace) as built:
        a = built.worker()
        built.open_breaker()
        await shared_redis.set(claim, "another-worker", px=int(CLAIM_SECONDS * 1000))
        assert await a.check_once() == []  # the other worker is posting it
        assert hook.messages == []
        assert await shared_redis.get(claim) == b"another-worker"
        await shared_redis.delete(claim)  # it ended (or its claim expired) without delivering
        assert await a.check_once() == ["breaker_open:firing"]
    assert hook.statuses() == [("breaker_open", "firing")]


async def test_a_claim_that_expired_mid_post_is_not_released_from_its_new_owner(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_url: str,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    delivered, claim = _alert_keys(redis_namespace)
    with redis.Redis.from_url(redis_url) as direct:
        # While a posts, its claim expires and another worker claims the rule.
        hook.during_post = lambda: direct.set(claim, "another-worker", px=30_000)
        async with workers(settings, server, shared_redis, redis_namespace) as built:
            a = built.worker()
            built.open_breaker()
            assert await a.check_once() == ["breaker_open:firing"]
    assert await shared_redis.get(claim) == b"another-worker"
    assert await shared_redis.get(delivered) == b"firing"  # a's delivery is still recorded


async def test_without_a_reachable_redis_workers_post_anyway(
    settings: Settings, receiver: tuple[Receiver, RunningServer], tmp_path: Path
) -> None:
    """Better a duplicate message than a silent alert."""
    hook, server = receiver
    with redis_server(tmp_path) as private:
        client = redis_client(private.url, timeout=0.5)
        try:
            async with workers(settings, server, client) as built:
                a, b = built.worker(), built.worker()
                built.open_breaker()
                hook.during_post = private.stop  # Redis goes between a's claim and its release
                assert await a.check_once() == ["breaker_open:firing"]
                hook.during_post = None
                assert await b.check_once() == ["breaker_open:firing"]  # no claim to see
                assert await a.check_once() == []
                built.close_breaker()
                assert await a.check_once() == ["breaker_open:resolved"]
        finally:
            await client.aclose()
    assert hook.statuses() == [
        ("breaker_open", "firing"),
        ("breaker_open", "firing"),
        ("breaker_open", "resolved"),
    ]


class BeforeTheClaim(Redis):
    """A real Redis client that runs `before` once, just before its first command on `key`."""

    key = ""
    before: Callable[[], Awaitable[object]] | None = None

    def arm(self, key: str, before: Callable[[], Awaitable[object]]) -> None:
        # Set here, not by the test: mypy would keep the test's assignment past the awaits that
        # clear it, and take the test's check that `before` ran for dead code.
        self.key, self.before = key, before

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.before is not None and self.key in args:
            before, self.before = self.before, None
            await before()
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


async def test_a_message_delivered_by_another_worker_just_before_the_claim_is_not_resent(
    settings: Settings,
    receiver: tuple[Receiver, RunningServer],
    shared_redis: Redis,
    redis_url: str,
    redis_namespace: str,
) -> None:
    hook, server = receiver
    _delivered, claim = _alert_keys(redis_namespace)
    interleaved = BeforeTheClaim.from_url(redis_url)
    assert isinstance(interleaved, BeforeTheClaim)  # from_url is typed as returning a Redis
    try:
        async with workers(settings, server, shared_redis, redis_namespace) as built:
            a, b = built.worker(interleaved), built.worker()
            built.open_breaker()

            async def b_delivers() -> None:
                assert await b.check_once() == ["breaker_open:firing"]

            interleaved.arm(claim, b_delivers)
            assert await a.check_once() == []
            assert interleaved.before is None  # b did deliver in between
    finally:
        await interleaved.aclose()
    assert hook.statuses() == [("breaker_open", "firing")]
