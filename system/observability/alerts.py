"""The spec's alert rules, checked by the service itself (for those without Prometheus).

Every `ALERT_CHECK_INTERVAL_SECONDS`:

- `error_rate`: more than `ALERT_ERROR_RATE_THRESHOLD` (1 %) of the requests of the last
  `ALERT_ERROR_RATE_WINDOW_SECONDS` (5 min) answered 5xx, counting at least
  `ALERT_ERROR_RATE_MIN_REQUESTS` requests. An import the open breaker rejected is the
  designed answer and does not count (the breaker rule covers that outage); neither do
  `/health` and `/metrics`. Each worker judges its own traffic.
- `breaker_open`: a circuit breaker has been open longer than `ALERT_BREAKER_OPEN_SECONDS`.
- `unresolved_failures`: more than `ALERT_UNRESOLVED_THRESHOLD` unresolved failures.

A rule posts a Slack-compatible JSON message to `ALERT_WEBHOOK_URL` once when it fires and
once when it resolves. With Redis the fired/resolved state is shared, so several workers send
one message between them. A message that cannot be delivered is tried again next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from redis.asyncio import Redis

from system.clock import isoformat_z, utcnow
from system.config import Settings
from system.db.database import Database
from system.db.failures import FailureRepository
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.redis_store import REDIS_DOWN
from system.resilience.store import OPEN

logger = logging.getLogger(__name__)

RULES = ("error_rate", "breaker_open", "unresolved_failures")


class RequestWindow:
    """Requests and 5xx answers per second over a sliding window (this worker's traffic)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._buckets: deque[list[int]] = deque()  # [second, requests, errors]

    def observe(self, status: int) -> None:
        """Count one answered request."""
        second = int(self._clock())
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
            self._trim(second)
        bucket = self._buckets[-1]
        bucket[1] += 1
        if status >= 500:
            bucket[2] += 1

    def _trim(self, now: int) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.seconds:
            self._buckets.popleft()

    def totals(self) -> tuple[int, int]:
        """(requests, errors) within the window."""
        self._trim(int(self._clock()))
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)


@dataclass
class RuleState:
    """What a rule last found."""

    name: str
    firing: bool = False
    summary: str = ""
    value: float = 0.0
    threshold: float = 0.0
    since: datetime | None = None
    notified: bool = True  # nothing to send until the first change


@dataclass
class Evaluation:
    """One rule's verdict at one check."""

    firing: bool
    summary: str
    value: float
    threshold: float


@dataclass
class Alerter:
    """Evaluates the rules and notifies the webhook on changes."""

    settings: Settings
    window: RequestWindow
    breakers: list[AsyncCircuitBreaker]
    database: Database
    redis: Redis | None = None
    on_unresolved: Callable[[int], None] | None = None
    states: dict[str, RuleState] = field(init=False)
    _http: httpx.AsyncClient | None = field(default=None, init=False)
    _loop: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.states = {name: RuleState(name) for name in RULES}

    async def evaluate(self) -> dict[str, Evaluation]:
        """Every rule's verdict now."""
        s = self.settings
        requests, errors = self.window.totals()
        rate = errors / requests if requests else 0.0
        results = {
            "error_rate": Evaluation(
                requests >= s.alert_error_rate_min_requests and rate > s.alert_error_rate_threshold,
                f"{rate:.1%} of {requests} requests failed in the last "
                f"{s.alert_error_rate_window_seconds:.0f} s",
                rate,
                s.alert_error_rate_threshold,
            )
        }
        longest, names = 0.0, []
        now = utcnow().timestamp()
        for breaker in self.breakers:
            snap = await breaker.snapshot()
            if snap.state == OPEN and snap.opened_at is not None:
                open_for = now - snap.opened_at
                if open_for > s.alert_breaker_open_seconds:
                    names.append(breaker.name)
                longest = max(longest, open_for)
        results["breaker_open"] = Evaluation(
            bool(names),
            f"circuit breaker {', '.join(names)} open for {math.floor(longest)} s"
            if names
            else "no circuit breaker open too long",
            longest,
            s.alert_breaker_open_seconds,
        )
        try:
            async with self.database.session() as session:
                unresolved = (await FailureRepository(session).summary()).unresolved
        except Exception as exc:
            logger.debug("alert check could not count failures: %s", exc)
            unresolved = int(self.states["unresolved_failures"].value)
        if self.on_unresolved is not None:
            self.on_unresolved(unresolved)
        results["unresolved_failures"] = Evaluation(
            unresolved > s.alert_unresolved_threshold,
            f"{unresolved} unresolved background task failures",
            unresolved,
            s.alert_unresolved_threshold,
        )
        return results

    async def check_once(self) -> list[str]:
        """Evaluate and notify; returns the messages sent (`rule:firing|resolved`)."""
        sent = []
        for name, verdict in (await self.evaluate()).items():
            state = self.states[name]
            state.summary, state.value, state.threshold = (
                verdict.summary,
                verdict.value,
                verdict.threshold,
            )
            if verdict.firing != state.firing:
                state.firing = verdict.firing
                state.since = utcnow()
                state.notified = False
            if not state.notified and await self._notify(state):
                state.notified = True
                sent.append(f"{name}:{'firing' if state.firing else 'resolved'}")
        return sent

    async def _claim(self, state: RuleState) -> bool:
        """Whether this worker sends the message (Redis: the first worker to flip it)."""
        if self.redis is None:
            return True
        key = f"{self.settings.redis_namespace}:alert:{state.name}"
        status = "firing" if state.firing else "ok"
        try:
            previous = await self.redis.getset(key, status)
        except REDIS_DOWN:
            return True  # better a duplicate message than a silent alert
        previous_status = previous.decode() if isinstance(previous, bytes) else previous
        return previous_status != status and not (previous_status is None and status == "ok")

    async def _notify(self, state: RuleState) -> bool:
        if not self.settings.alert_webhook_url:
            return True
        if not await self._claim(state):
            return True
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=5.0)
            response = await self._http.post(
                self.settings.alert_webhook_url, json=self.message(state)
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("alert %s could not be delivered (%s): will retry", state.name, exc)
            if self.redis is not None:
                # Let the next check (here or in another worker) claim it again.
                key = f"{self.settings.redis_namespace}:alert:{state.name}"
                with contextlib.suppress(*REDIS_DOWN):
                    await self.redis.delete(key)
            return False
        logger.warning(
            "alert %s %s: %s", state.name, "FIRING" if state.firing else "resolved", state.summary
        )
        return True

    def message(self, state: RuleState) -> dict[str, object]:
        """The Slack-compatible webhook payload (plus an `alert` object for machines)."""
        status = "firing" if state.firing else "resolved"
        emoji = ":rotating_light:" if state.firing else ":white_check_mark:"
        at = state.since or utcnow()
        return {
            "text": f"{emoji} [{self.settings.environment}] {status.upper()}: {state.summary}",
            "attachments": [
                {
                    "color": "#d00000" if state.firing else "#2eb886",
                    "title": f"bgg-reliability alert: {state.name}",
                    "text": state.summary,
                    "fields": [
                        {"title": "value", "value": f"{state.value:g}", "short": True},
                        {"title": "threshold", "value": f"{state.threshold:g}", "short": True},
                        {"title": "environment", "value": self.settings.environment, "short": True},
                    ],
                    "ts": int(at.timestamp()),
                }
            ],
            "alert": {
                "rule": state.name,
                "status": status,
                "summary": state.summary,
                "value": state.value,
                "threshold": state.threshold,
                "at": isoformat_z(at),
                "environment": self.settings.environment,
            },
        }

    def start(self) -> None:
        """Start checking every `ALERT_CHECK_INTERVAL_SECONDS`."""
        self._loop = asyncio.create_task(self._run(), name="alerts")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alert_check_interval_seconds)
            try:
                await self.check_once()
            except Exception:
                logger.exception("alert check failed")

    async def aclose(self) -> None:
        """Stop checking."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
