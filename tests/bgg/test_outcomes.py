"""Every row of the response-outcome table, over real HTTP to the fake BGG.

For each upstream answer: the error the caller gets, how many requests reached BGG (retried
or not, counted at the fake), and what the breaker made of them. README.md shows the same
table; the last test keeps the two in step.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from chaos.fakes import FaultRule
from chaos.proxy import ProxyServer
from chaos.service import free_port
from system.bgg.client import OUTCOMES, BggClient, build_http_client
from system.bgg.errors import (
    BggAuthError,
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggRequestError,
    BggTimeout,
    BggTransientError,
    BggUnavailable,
    GameNotFound,
)
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.retry import RetryPolicy
from tests.conftest import REPO_ROOT, NoSleep
from tests.fakes import Upstreams
from tests.support.waiting import eventually


class Harness:
    def __init__(self, base_url: str, upstreams: Upstreams, *, request_timeout: float = 5) -> None:
        self.upstreams = upstreams
        self.sleeps = NoSleep()
        self.breaker = AsyncCircuitBreaker("BGG API", fail_max=5, reset_timeout=60)
        self.http = build_http_client(connect_timeout=1, read_timeout=5)
        self.client = BggClient(
            base_url=base_url,
            http=self.http,
            breaker=self.breaker,
            policy=RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15),
            request_timeout=request_timeout,
            max_id=10_000_000,
            sleep=self.sleeps,
        )

    def fault(self, **fields: object) -> None:
        self.upstreams.bgg_app.engine.set_rules([FaultRule(path="/thing", **fields)])

    async def failures(self) -> int:
        return (await self.breaker.snapshot()).failures

    def requests(self) -> int:
        return self.upstreams.thing_requests()


@pytest.fixture
async def bgg(upstreams: Upstreams) -> AsyncIterator[Harness]:
    harness = Harness(upstreams.bgg_base_url, upstreams)
    yield harness
    await harness.http.aclose()


async def test_200_with_the_item_is_a_success(bgg: Harness) -> None:
    bgg.fault(status=500, first_n=1)
    with pytest.raises(BggTransientError):
        await BggClient(
            base_url=bgg.client.base_url,
            http=bgg.http,
            breaker=bgg.breaker,
            policy=RetryPolicy(attempts=1, initial_wait=1, max_wait=1),
            request_timeout=5,
            max_id=10_000_000,
        ).fetch_thing(28720)
    assert await bgg.failures() == 1
    game = await bgg.client.fetch_thing(28720)
    assert game.title == "Brass: Lancashire"
    assert await bgg.failures() == 0, "a success resets the count"
    assert bgg.requests() == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"body": "empty"}, GameNotFound),
        ({"body": "error"}, BggRequestError),
    ],
    ids=["empty-items", "error-in-items"],
)
async def test_correct_negative_answers_are_breaker_successes(
    bgg: Harness, fault: dict[str, object], error: type[BggError]
) -> None:
    bgg.fault(**fault)
    for _ in range(10):
        with pytest.raises(error):
            await bgg.client.fetch_thing(28720)
    assert bgg.requests() == 10, "never retried"
    assert await bgg.failures() == 0
    assert (await bgg.breaker.snapshot()).state == "closed"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 202}, BggTransientError),
        ({"status": 500}, BggTransientError),
        ({"status": 502}, BggTransientError),
        ({"status": 504}, BggTransientError),
        ({"status": 503}, BggTransientError),
        ({"status": 429}, BggRateLimited),
    ],
)
async def test_transient_answers_are_retried_and_counted(
    bgg: Harness, fault: dict[str, object], error: type[BggError]
) -> None:
    bgg.fault(**fault)
    with pytest.raises(error):
        await bgg.client.fetch_thing(28720)
    assert bgg.requests() == 3
    assert await bgg.failures() == 3
    assert len(bgg.sleeps.waits) == 2


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(bgg: Harness, status: int) -> None:
    bgg.fault(status=status, retry_after=7, first_n=2)
    game = await bgg.client.fetch_thing(28720)
    assert game.bgg_id == 28720
    assert bgg.sleeps.waits == [7, 7]
    assert bgg.requests() == 3


async def test_retry_after_beyond_the_deadline_gives_up_at_once(bgg: Harness) -> None:
    bgg.fault(status=429, retry_after=60)
    with pytest.raises(BggRateLimited):
        await bgg.client.fetch_thing(28720)
    assert bgg.requests() == 1
    assert bgg.sleeps.waits == []


async def test_a_timeout_is_retried_and_counted(upstreams: Upstreams) -> None:
    harness = Harness(upstreams.bgg_base_url, upstreams, request_timeout=0.2)
    try:
        harness.fault(delay=2)
        with pytest.raises(BggTimeout) as timed_out:
            await harness.client.fetch_thing(28720)
        assert type(timed_out.value) is BggTimeout
        assert harness.requests() == 3
        assert await harness.failures() == 3
    finally:
        await harness.http.aclose()


async def test_connection_refused_is_retried_and_counted(upstreams: Upstreams) -> None:
    harness = Harness(f"http://127.0.0.1:{free_port()}/xmlapi2", upstreams)
    try:
        with pytest.raises(BggTransientError, match="ConnectError"):
            await harness.client.fetch_thing(28720)
        assert await harness.failures() == 3
    finally:
        await harness.http.aclose()


async def test_connection_reset_is_retried_and_counted(
    upstreams: Upstreams, proxies: ProxyServer
) -> None:
    proxies.create("bgg-reset", ("127.0.0.1", upstreams.bgg.port))
    proxies.add_toxic("bgg-reset", type="reset_peer", direction="downstream", timeout=0)
    harness = Harness(f"{proxies.url('bgg-reset')}/xmlapi2", upstreams)
    try:
        with pytest.raises(BggTransientError):
            await harness.client.fetch_thing(28720)
        assert await harness.failures() == 3
    finally:
        await harness.http.aclose()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 401}, BggAuthError),
        ({"status": 403}, BggAuthError),
        ({"body": "html"}, BggBadResponse),
        ({"body": "broken"}, BggBadResponse),
        ({"body": "truncated"}, BggBadResponse),
        ({"body": "bomb"}, BggBadResponse),
        ({"status": 404}, BggBadResponse),
    ],
)
async def test_permanent_failures_are_counted_but_not_retried(
    bgg: Harness, fault: dict[str, object], error: type[BggError]
) -> None:
    bgg.fault(**fault)
    with pytest.raises(error):
        await bgg.client.fetch_thing(28720)
    assert bgg.requests() == 1
    assert await bgg.failures() == 1


async def test_out_of_range_is_refused_before_any_call(bgg: Harness) -> None:
    with pytest.raises(ValueError, match="between 1 and"):
        await bgg.client.fetch_thing(0)
    assert bgg.requests() == 0


async def test_open_breaker_rejects_without_a_call_or_a_wait(bgg: Harness) -> None:
    await bgg.breaker.reset("open")
    with pytest.raises(BggUnavailable) as rejected:
        await bgg.client.fetch_thing(28720)
    assert (rejected.value.breaker, rejected.value.state) == ("BGG API", "open")
    assert rejected.value.retry_after == 60
    assert bgg.requests() == 0
    assert bgg.sleeps.waits == []


async def test_cancellation_propagates_and_counts_as_nothing(bgg: Harness) -> None:
    bgg.fault(hang=True)
    task = asyncio.create_task(bgg.client.fetch_thing(28720))
    await eventually(bgg.requests, "the request to reach the fake BGG")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await bgg.failures() == 0
    assert bgg.sleeps.waits == []
    bgg.upstreams.bgg_app.engine.clear()


def test_readme_shows_the_same_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", readme, flags=re.MULTILINE)
    table = [r for r in rows if r[0] in {o.upstream for o in OUTCOMES}]
    assert table == [(o.upstream, o.error, o.retried, o.breaker) for o in OUTCOMES]


async def test_a_retry_wait_ends_when_another_import_opens_the_breaker(
    upstreams: Upstreams,
) -> None:
    """An import asleep between attempts is rejected as soon as the breaker opens, not after
    its wait, and the rejection says it had already reached BGG."""
    http = build_http_client(connect_timeout=1, read_timeout=5)
    breaker = AsyncCircuitBreaker("BGG API", fail_max=2, reset_timeout=60)
    waits: list[float] = []

    async def sleep_forever(seconds: float) -> None:
        # A wait that never ends on its own: only the breaker opening can end it.
        waits.append(seconds)
        await asyncio.Event().wait()

    client = BggClient(
        base_url=upstreams.bgg_base_url,
        http=http,
        breaker=breaker,
        policy=RetryPolicy(attempts=3, initial_wait=30, min_wait=30, max_wait=30, jitter=False),
        request_timeout=5,
        max_id=10_000_000,
        sleep=sleep_forever,
    )
    try:
        upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
        sleeper = asyncio.create_task(client.fetch_thing(1))  # fails once, waits 30 s
        await eventually(lambda: waits, "the first import to start its retry wait")
        with pytest.raises(BggTransientError):
            await client.fetch_thing(2)  # the second failure opens the breaker
        await eventually(sleeper.done, "the breaker opening to end the retry wait")
        with pytest.raises(BggUnavailable) as caught_opening:
            await sleeper
        assert waits == [30]
        assert caught_opening.value.upstream_attempts == 1
        with pytest.raises(BggUnavailable) as turned_away:
            await client.fetch_thing(3)
        assert turned_away.value.upstream_attempts == 0
        assert upstreams.thing_requests() == 2
    finally:
        await http.aclose()
