"""The BGG client with an in-process transport: requests it makes, errors it maps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine

from system.bgg.client import BggClient, Parser, build_http_client, parse_retry_after
from system.bgg.errors import (
    BggAuthError,
    BggBadResponse,
    BggRateLimited,
    BggTimeout,
    BggTransientError,
    BggUnavailable,
    GameNotFound,
)
from system.bgg.models import BggGame
from system.bgg.parser import parse_thing
from system.resilience.breaker import AsyncCircuitBreaker, CircuitOpenError
from system.resilience.retry import RetryPolicy
from system.resilience.store import MemoryBreakerStore
from tests.conftest import FIXTURES
from tests.support.waiting import eventually

BRASS = (FIXTURES / "bgg" / "thing_28720_brass_lancashire_stats.xml").read_bytes()
EMPTY = (FIXTURES / "bgg" / "thing_10000000_nonexistent_empty.xml").read_bytes()


class NoSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(
    handler: object,
    *,
    token: str | None = None,
    attempts: int = 3,
    sleep: NoSleep | None = None,
    parser: Parser = parse_thing,
    parse_threads: int = 1,
    breaker: AsyncCircuitBreaker | None = None,
    on_fetch: Callable[[int, str], None] | None = None,
) -> BggClient:
    http = build_http_client(
        connect_timeout=1,
        read_timeout=1,
        api_token=token,
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )
    return BggClient(
        base_url="http://bgg.test/xmlapi2/",
        http=http,
        breaker=breaker or AsyncCircuitBreaker("BGG API", fail_max=5, reset_timeout=60),
        policy=RetryPolicy(attempts=attempts, initial_wait=1, max_wait=10, deadline=15),
        request_timeout=5,
        max_id=10_000_000,
        sleep=sleep or NoSleep(),
        parser=parser,
        parse_threads=parse_threads,
        on_fetch=on_fetch,
    )


async def test_request_shape_and_parsed_game() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=BRASS)

    game = await client(handler, token="s3cret").fetch_thing(28720)
    assert game.title == "Brass: Lancashire"
    (request,) = seen
    assert str(request.url) == "http://bgg.test/xmlapi2/thing?id=28720&stats=1"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["User-Agent"].startswith("bgg-reliability/")


async def test_no_token_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=BRASS)

    await client(handler).fetch_thing(28720)
    assert "Authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("response", "error", "requests"),
    [
        (httpx.Response(200, content=EMPTY), GameNotFound, 1),
        (httpx.Response(401), BggAuthError, 1),
        (httpx.Response(403), BggAuthError, 1),
        (httpx.Response(200, text="<html><body>oops</body></html>"), BggBadResponse, 1),
        (httpx.Response(404), BggBadResponse, 1),
        (httpx.Response(500), BggTransientError, 3),
        (httpx.Response(502), BggTransientError, 3),
        (httpx.Response(202, text="<message>queued</message>"), BggTransientError, 3),
        (httpx.Response(429, headers={"Retry-After": "2"}), BggRateLimited, 3),
    ],
)
async def test_status_mapping(
    response: httpx.Response, error: type[Exception], requests: int
) -> None:
    count = 0

    def handler(_request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return response

    with pytest.raises(error):
        await client(handler).fetch_thing(13)
    assert count == requests


async def test_transport_errors_are_transient_and_timeouts_are_timeouts() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(BggTransientError) as refused:
        await client(refuse).fetch_thing(13)
    assert type(refused.value) is BggTransientError
    with pytest.raises(BggTimeout) as timed_out:
        await client(slow).fetch_thing(13)
    assert type(timed_out.value) is BggTimeout


class BrokenBody(httpx.AsyncByteStream):
    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield b"<items>"
        raise AttributeError("'NoneType' object has no attribute 'getpeername'")


async def test_a_connection_layer_crash_is_a_network_error_not_a_500() -> None:
    """anyio raised AttributeError for a connection reset mid-handshake (chaos network_errors)."""
    count = 0

    def crash(_request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        raise AttributeError("'NoneType' object has no attribute 'getpeername'")

    def broken_body(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=BrokenBody())

    bgg = client(crash)
    with pytest.raises(BggTransientError, match="AttributeError in the connection layer"):
        await bgg.fetch_thing(13)
    assert count == 3  # retried like any network error
    assert (await bgg.breaker.snapshot()).failures == 3  # and counted by the breaker
    with pytest.raises(BggTransientError, match="AttributeError in the connection layer"):
        await client(broken_body).fetch_thing(13)


async def test_retry_after_is_waited_out() -> None:
    answers = [
        httpx.Response(503, headers={"Retry-After": "4"}),
        httpx.Response(200, content=BRASS),
    ]
    sleeps = NoSleep()
    game = await client(lambda _r: answers.pop(0), sleep=sleeps).fetch_thing(28720)
    assert game.bgg_id == 28720
    assert sleeps.waits == [4]


async def test_oversized_body_is_refused() -> None:
    big = b"<items>" + b" " * 6_000_000 + b"</items>"
    with pytest.raises(BggBadResponse, match="larger than"):
        await client(lambda _r: httpx.Response(200, content=big)).fetch_thing(13)


@pytest.mark.parametrize("bgg_id", [0, -1, 10_000_001])
async def test_out_of_range_ids_make_no_call(bgg_id: int) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be made")

    with pytest.raises(ValueError, match="between 1 and"):
        await client(handler).fetch_thing(bgg_id)


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=now) == 30


class BlockingParser:
    """`parse_thing` that waits for `release` first, counting parses under way.

    The wait has a timeout only so that a parse run on the event loop (which blocks the
    loop, so nothing there can ever set `release`) fails the test instead of hanging it; it
    is long so that a slow machine still sees the parses held (under the test's timeout).
    """

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.released_in_time: list[bool] = []
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def __call__(self, body: bytes, *, bgg_id: int, max_bytes: int) -> BggGame:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.started.set()
        self.released_in_time.append(self.release.wait(timeout=30))
        with self._lock:
            self.inside -= 1
        return parse_thing(body, bgg_id=bgg_id, max_bytes=max_bytes)


async def test_the_answer_is_parsed_off_the_event_loop() -> None:
    """A coroutine makes progress while a parse is under way: the loop is not blocked.

    The parser waits until the coroutine has ticked a hundred times; on the loop that wait
    could never be satisfied (before the change it timed out with 0 ticks).
    """
    parser = BlockingParser()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        await eventually(parser.started.is_set, "the parse to start")
        for _ in range(100):
            ticks += 1
            await asyncio.sleep(0)
        parser.release.set()

    bgg = client(lambda _r: httpx.Response(200, content=BRASS), parser=parser)
    game, _ = await asyncio.gather(bgg.fetch_thing(28720), ticker())
    assert game.title == "Brass: Lancashire"
    assert parser.released_in_time == [True]
    assert ticks == 100


async def test_parses_are_bounded_so_they_do_not_take_every_thread() -> None:
    parser = BlockingParser()
    bgg = client(lambda _r: httpx.Response(200, content=BRASS), parser=parser, parse_threads=2)
    fetches = [asyncio.ensure_future(bgg.fetch_thing(28720)) for _ in range(10)]
    limiter = bgg._parse_limiter
    await eventually(
        lambda: (parser.inside, limiter.borrowed_tokens, limiter.statistics().tasks_waiting),
        "two parses running and eight fetches waiting for a thread",
        until=lambda state: state == (2, 2, 8),
    )
    parser.release.set()
    games = await asyncio.gather(*fetches)
    assert {g.bgg_id for g in games} == {28720}
    assert parser.most_inside == 2


class ClaimCountingStore(MemoryBreakerStore):
    """The in-memory store, counting trial claims: the one write a rejection could make."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def try_begin_trial(self, *args: Any) -> Any:
        self.claims += 1
        return await super().try_begin_trial(*args)


async def test_an_open_breaker_rejects_with_one_store_read_and_the_loops_accounting() -> None:
    """Issue 14, item 4: a rejection reads the store once and claims nothing (no retry loop
    is built for it); attempts, `on_fetch` and the rejection callbacks say what they said."""
    requests: list[httpx.Request] = []
    fetches: list[tuple[int, str]] = []
    rejections: list[CircuitOpenError] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=BRASS)

    store = ClaimCountingStore()
    breaker = AsyncCircuitBreaker("BGG API", fail_max=5, reset_timeout=60, store=store)
    breaker.on_rejection(rejections.append)
    bgg = client(handler, breaker=breaker, on_fetch=lambda n, outcome: fetches.append((n, outcome)))
    with time_machine.travel(datetime(2026, 12, 6, 12, 0, tzinfo=UTC), tick=False) as clock:
        await breaker.reset("open")
        for _ in range(3):
            with pytest.raises(BggUnavailable) as caught:
                await bgg.fetch_thing_with_attempts(28720)
            assert (caught.value.attempts, caught.value.upstream_attempts) == (1, 0)
            assert caught.value.retry_after == 60
        assert store.claims == 0 and requests == []
        assert fetches == [(1, "BggUnavailable")] * 3 and len(rejections) == 3
        # Past the reset timeout the trial is claimed as before, and it closes the breaker.
        clock.shift(61)
        game, attempts = await bgg.fetch_thing_with_attempts(28720)
    assert (game.title, attempts, store.claims, len(requests)) == ("Brass: Lancashire", 1, 1, 1)
    assert breaker.last_known_state == "closed"
