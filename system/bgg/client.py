"""The BGG XML API2 client: retry(breaker(timeout(request))).

The retry loop sits outside the breaker, so the breaker sees every upstream request and
opens after exactly `fail_max` failed ones; once it is open, the first rejection ends the
retry loop (a rejection is never retried and never waits). Each request runs under its own
timeout inside the breaker, so a request that hangs counts as a failure.

This is the one boundary where `httpx` errors and odd answers become our own error tree
(`system/bgg/errors.py`); `OUTCOMES` below is the table README.md shows, and
`tests/bgg/test_outcomes.py` checks each row against a real request.

The XML is parsed in a worker thread, never on the event loop: a 5 MB answer took hundreds
of milliseconds to parse, and every request of the worker waited for it. At most
`parse_threads` parses run at once (default 1: parses share one GIL, so more would not finish
sooner, each more would compete with the loop for it, and the default thread pool stays free
for DNS lookups); the parser pauses without the GIL between 16 KB pieces and builds only the
elements it reads, so the loop keeps answering while a parse runs
(`python -m benchmarks.big_answers` measures it).

With `processes` (a `ProcessParser`, `BGG_PARSE_PROCESSES` > 0) the parse runs in a child
process instead, with its own GIL (`system/bgg/parse_process.py`).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import httpx

from system import __version__
from system.bgg.errors import (
    BggAuthError,
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggTimeout,
    BggTransientError,
    BggUnavailable,
)
from system.bgg.models import BggGame
from system.bgg.parse_process import ProcessParser
from system.bgg.parser import DEFAULT_MAX_BYTES, parse_thing
from system.resilience.breaker import AsyncCircuitBreaker, CircuitOpenError
from system.resilience.budget import RetryBudget
from system.resilience.retry import RetryPolicy, Sleep, build_retrying
from system.resilience.store import CLOSED
from system.resilience.transport import NetworkErrorsOnly

logger = logging.getLogger(__name__)

#: `parse_thing`'s signature: the body, then `bgg_id` and `max_bytes` by keyword.
Parser = Callable[..., BggGame]

USER_AGENT = f"bgg-reliability/{__version__} (+https://github.com/bgg-reliability)"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the response-outcome table."""

    upstream: str
    error: str
    retried: str
    breaker: str


#: What each upstream answer becomes. Kept in step with README.md by a test.
OUTCOMES: tuple[Outcome, ...] = (
    Outcome("200 with the item", "—", "—", "success"),
    Outcome(
        "200 with empty `<items>` (unknown id)",
        "`GameNotFound` (404 to the API caller)",
        "no",
        "success: BGG answered correctly",
    ),
    Outcome(
        "200 with `<error message=...>` inside `<items>`",
        "`BggRequestError` (422, not 400: our request was well-formed, "
        "BGG refused what it asked for)",
        "no",
        "success",
    ),
    Outcome("202 queued", "`BggTransientError`", "yes", "failure"),
    Outcome(
        "429 / 503 with `Retry-After`",
        "`BggRateLimited` / `BggTransientError`",
        "yes, after what `Retry-After` says; one that ends past the deadline gives up at once "
        "(the wait could only end in a timeout)",
        "failure",
    ),
    Outcome(
        "500 / 502 / 504, timeouts, connect/read errors, resets",
        "`BggTransientError` (`BggTimeout` for timeouts: 504 to the caller, else 502)",
        "yes",
        "failure",
    ),
    Outcome("401 / 403", "`BggAuthError` (token missing or revoked)", "no", "failure"),
    Outcome("200 with HTML or broken XML", "`BggBadResponse`", "no", "failure"),
    # Not in the table: a 404 or 3xx from the thing endpoint means a wrong
    # BGG_BASE_URL (BGG answers unknown ids with 200), so asking again cannot help.
    Outcome("other 3xx / 4xx (a wrong `BGG_BASE_URL`)", "`BggBadResponse`", "no", "failure"),
    Outcome(
        "200, but the process parsing it died (killed, out of memory)",
        "`ParseProcessLost` (503 + `Retry-After`; the next import parses in a new process)",
        "no",
        "neither: BGG answered",
    ),
    Outcome("bgg_id out of range", "422 before any call", "—", "not called"),
    Outcome(
        "the breaker is open", "`BggUnavailable` (503 + `Retry-After`)", "no, never", "not called"
    ),
    Outcome(
        "the caller is cancelled",
        "`CancelledError` propagates",
        "no",
        "neither (never a failure)",
    ),
)


def build_http_client(
    *,
    connect_timeout: float,
    read_timeout: float,
    api_token: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 50,
) -> httpx.AsyncClient:
    """A shared HTTP client (BGG's, the CDN's): explicit timeouts, our User-Agent, the token.

    Whatever the transport raises reaches callers as an httpx error (`NetworkErrorsOnly`).
    """
    headers = {"User-Agent": USER_AGENT, "Accept": "application/xml, text/xml"}
    if api_token:
        headers["Authorization"] = f"Bearer {api_token}"
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        ),
        transport=NetworkErrorsOnly(transport or httpx.AsyncHTTPTransport(limits=limits)),
        follow_redirects=False,
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delay-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_for_status(response: httpx.Response, bgg_id: int) -> BggError | None:
    status = response.status_code
    if status == 200:
        return None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 202:
        return BggTransientError(
            "BGG queued the request (202)", bgg_id=bgg_id, retry_after=retry_after, status_code=202
        )
    if status == 429:
        return BggRateLimited(
            "BGG rate limit (429)", bgg_id=bgg_id, retry_after=retry_after, status_code=429
        )
    if status in (401, 403):
        return BggAuthError(f"BGG refused our credentials ({status})", bgg_id=bgg_id)
    if status >= 500:
        return BggTransientError(
            f"BGG answered {status}", bgg_id=bgg_id, retry_after=retry_after, status_code=status
        )
    # 3xx and other 4xx: the base URL or the request is wrong; asking again will not help.
    return BggBadResponse(f"BGG answered an unexpected {status}", bgg_id=bgg_id)


def _map_transport_error(exc: Exception, bgg_id: int) -> BggError:
    """httpx's exceptions (and our own request timeout) as BGG errors."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return BggTimeout(f"BGG did not answer in time ({type(exc).__name__})", bgg_id=bgg_id)
    if isinstance(exc, httpx.TransportError):
        return BggTransientError(
            f"network error talking to BGG ({type(exc).__name__}: {exc})", bgg_id=bgg_id
        )
    return BggTransientError(f"HTTP error talking to BGG ({type(exc).__name__})", bgg_id=bgg_id)


def _unavailable(exc: CircuitOpenError, *, attempts: int | None = None) -> BggUnavailable:
    """The import error of a breaker rejection; `attempts` when it ends the fetch."""
    error = BggUnavailable(
        "BGG is unavailable: the circuit breaker is open",
        breaker=exc.breaker,
        state=exc.state,
        retry_after=exc.retry_after,
    )
    if attempts is not None:
        error.attempts = attempts
        error.upstream_attempts = 0
    return error


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, BggError) and exc.retryable


class BggClient:
    """Fetches games from BGG through the breaker, the retry policy and the retry budget."""

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.AsyncClient,
        breaker: AsyncCircuitBreaker,
        policy: RetryPolicy,
        request_timeout: float,
        max_id: int,
        budget: RetryBudget | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_fetch: Callable[[int, str], None] | None = None,
        parser: Parser = parse_thing,
        parse_threads: int = 1,
        processes: ProcessParser | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.breaker = breaker
        self.policy = policy
        self.request_timeout = request_timeout
        self.max_id = max_id
        self.budget = budget
        self._sleep = sleep
        self._clock = clock
        self._max_bytes = max_bytes
        #: Told `(attempts, outcome)` after every fetch; outcome is `ok` or the error's name.
        self.on_fetch = on_fetch
        self._parser = parser
        self._parse_limiter = anyio.CapacityLimiter(parse_threads)
        self._processes = processes

    async def _wait(self, seconds: float) -> None:
        """The retry wait, cut short when the breaker opens meanwhile (another import
        opened it): the next attempt is then rejected at once instead of after the wait."""
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        opened = asyncio.ensure_future(self.breaker.wait_open())
        try:
            await asyncio.wait({sleeping, opened}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, opened):
                task.cancel()
            await asyncio.gather(sleeping, opened, return_exceptions=True)

    def _worth_retrying(self, exc: BaseException) -> bool:
        # Once this failure has opened the breaker, a wait would only end in a rejection.
        return _is_retryable(exc) and self.breaker.last_known_state == CLOSED

    async def fetch_thing(self, bgg_id: int) -> BggGame:
        """The game `bgg_id`, or one of the documented `BggError`s."""
        game, _attempts = await self.fetch_thing_with_attempts(bgg_id)
        return game

    async def fetch_thing_with_attempts(self, bgg_id: int) -> tuple[BggGame, int]:
        """Like `fetch_thing`, also saying how many attempts this call made."""
        if not 1 <= bgg_id <= self.max_id:
            raise ValueError(f"bgg_id must be between 1 and {self.max_id}")
        if self.budget is not None:
            self.budget.deposit()
        started = self._clock()
        try:
            # An open breaker's rejection without building the retry loop (~85 us, most of
            # a rejection's own cost): the answer, the count and the metrics the loop's
            # first attempt gives; whatever else happens there ends it the same way too.
            await self.breaker.reject_while_open()
        except BaseException as exc:
            if self.on_fetch is not None:
                name = BggUnavailable.__name__ if isinstance(exc, CircuitOpenError) else None
                self.on_fetch(1, name or type(exc).__name__)
            if isinstance(exc, CircuitOpenError):
                raise _unavailable(exc, attempts=1) from None
            raise
        retrying = build_retrying(
            self.policy,
            retryable=self._worth_retrying,
            logger=logger,
            what=f"BGG thing {bgg_id}",
            budget=self.budget,
            sleep=self._wait,
        )
        attempts, outcome = 0, "ok"
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    game = await self._request_once(bgg_id, started)
        except BggUnavailable as exc:
            # Tell the caller whether this import reached BGG before the breaker stopped it
            # (it was caught by the opening) or was turned away at once (the breaker's own
            # fast answer): load tests judge the two differently.
            exc.upstream_attempts = attempts - 1
            exc.attempts = attempts
            outcome = type(exc).__name__
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            if isinstance(exc, BggError):
                exc.attempts = attempts
            raise
        finally:
            if self.on_fetch is not None:
                self.on_fetch(attempts, outcome)
        return game, attempts

    async def fetch_once(self, bgg_id: int) -> BggGame:
        """One request for `bgg_id` through the breaker: no retries, no retry budget, not
        counted by `on_fetch` (the breaker's recovery probe, not an import).

        Raises like `fetch_thing` (`BggUnavailable` when the breaker turns it away).
        """
        return await self._request_once(bgg_id, self._clock())

    async def _request_once(self, bgg_id: int, started: float) -> BggGame:
        deadline = self.policy.deadline if self.policy.deadline is not None else float("inf")
        remaining = deadline - (self._clock() - started)
        if remaining <= 0:
            raise BggTimeout("BGG import deadline reached", bgg_id=bgg_id)
        answer: BggError | None = None
        try:
            async with self.breaker.guard():
                body = await self._get(bgg_id, within=min(self.request_timeout, remaining))
                try:
                    game = await self._parse(body, bgg_id)
                except BggError as exc:
                    if exc.breaker_failure:
                        raise
                    # BGG answered correctly ("no such item", "invalid request"): a success
                    # for the breaker, decided after the guarded request, so nothing needs
                    # to be excluded (pybreaker would count an excluded error as a success
                    # anyway, resetting the failure count either way).
                    answer = exc
        except CircuitOpenError as exc:
            raise _unavailable(exc) from None
        if answer is not None:
            raise answer
        return game

    async def _parse(self, body: bytes, bgg_id: int) -> BggGame:
        """`parse_thing` in a child process or a worker thread (see the module docstring)."""
        if self._processes is not None:
            return await self._processes.parse(body, bgg_id=bgg_id, max_bytes=self._max_bytes)
        return await anyio.to_thread.run_sync(
            functools.partial(self._parser, body, bgg_id=bgg_id, max_bytes=self._max_bytes),
            limiter=self._parse_limiter,
        )

    def thing_url(self, bgg_id: int) -> str:
        """The URL a fetch of `bgg_id` requests, fit to record: the API token travels in the
        `Authorization` header, never here, and any `user:password@` of the base URL is cut."""
        url = httpx.URL(f"{self.base_url}/thing", params={"id": str(bgg_id), "stats": "1"})
        return str(url.copy_with(username=None, password=None))

    async def _get(self, bgg_id: int, *, within: float) -> bytes:
        url = f"{self.base_url}/thing"
        try:
            async with asyncio.timeout(within):
                async with self.http.stream(
                    "GET", url, params={"id": str(bgg_id), "stats": "1"}
                ) as response:
                    error = _error_for_status(response, bgg_id)
                    if error is not None:
                        raise error
                    return await self._read_capped(response, bgg_id)
        except BggError:
            raise
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _map_transport_error(exc, bgg_id) from exc

    async def _read_capped(self, response: httpx.Response, bgg_id: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise BggBadResponse(
                    f"BGG answer is larger than {self._max_bytes} bytes (refused)", bgg_id=bgg_id
                )
            chunks.append(chunk)
        return b"".join(chunks)
