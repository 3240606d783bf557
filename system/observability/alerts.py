"""The spec's alert rules, checked by the service itself (for those without Prometheus).

Every `ALERT_CHECK_INTERVAL_SECONDS`:

- `error_rate`: more than `ALERT_ERROR_RATE_THRESHOLD` (1 %) of the requests of the last
  `ALERT_ERROR_RATE_WINDOW_SECONDS` (5 min) answered 5xx, counting at least
  `ALERT_ERROR_RATE_MIN_REQUESTS` requests. An import the open breaker rejected is the
  designed answer and does not count (the breaker rule covers that outage); neither do
  `/health` and `/metrics`. Each worker judges its own traffic.
- `breaker_open`: a circuit breaker has been open longer than `ALERT_BREAKER_OPEN_SECONDS`.
  Counted from the start of the outage: a failed half-open trial re-opens the breaker with a
  new `opened_at`, and the recovery probe makes one every reset timeout and a bit, so the
  earliest opening this worker saw since the breaker was last closed is kept (a transition
  it made or noticed, or the shared state's `opened_at`), and a half-open breaker is still in
  its outage. (Measured from the last `opened_at`, an outage
  longer than the alert window would never fire the alert.)
- `unresolved_failures`: more than `ALERT_UNRESOLVED_THRESHOLD` unresolved failures.
- `job_backlog`: the oldest *due* queued background job (`run_after` passed) has waited longer
  than `ALERT_JOB_BACKLOG_SECONDS`: no worker is claiming, or too few for the load. A job
  waiting on an open breaker is not due, so an outage does not fire it (`breaker_open` does).
  Ages are measured on the database's clock, as every lease is.

A rule posts a Slack-compatible JSON message to `ALERT_WEBHOOK_URL` once when it fires and
once when it resolves. A message the webhook refuses (or that cannot reach it) is sent again
at the next check, firing or resolved alike.

Per rule the status last *delivered* is kept: `firing` or `ok` (the start: nothing fired). A
worker whose verdict differs from it posts the message, and only a delivered message changes
it. So a refused message is tried again at the next check, and a resolution whose firing
message was never delivered is not sent (there is nothing to resolve).

With Redis, the delivered status is shared (`<ns>:alert:<rule>`, absent meaning `ok`), so
several workers send one message between them: a worker posts only after taking the claim
`<ns>:alert:<rule>:sending`, a redis-py `Lock` (its token; it expires after `CLAIM_SECONDS`
in case the worker dies mid-post). It reads the delivered status before claiming and again
once it holds the claim, so a message another worker delivered in between is not sent twice.
It releases the claim whether the post worked or not, recording the new status first when it
did; the release deletes the claim only while it is still this worker's (one that expired
mid-post and was taken by another worker is left to that one). A worker that finds the
status already delivered, or another worker's claim, sends nothing and reports nothing as
sent; in the second case it looks again at its next check, so a post the other worker fails
to deliver is still sent. When Redis is unreachable a worker posts anyway: better a duplicate
than a silent alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError

from system.clock import isoformat_z, utcnow
from system.config import Settings
from system.db.database import Database
from system.db.failures import FailureRepository
from system.db.jobs import count_jobs
from system.periodic import Periodic
from system.resilience.breaker import AsyncCircuitBreaker, Transition
from system.resilience.redis_store import REDIS_DOWN
from system.resilience.store import CLOSED, Snapshot

logger = logging.getLogger(__name__)

RULES = ("error_rate", "breaker_open", "unresolved_failures", "job_backlog")

#: Seconds a webhook post may take (the whole post, not each phase of it).
SEND_TIMEOUT = 5.0
#: Seconds a worker's claim to post a message lasts if it is never released (the worker
#: died mid-post); longer than any post can take.
CLAIM_SECONDS = 6 * SEND_TIMEOUT


class Delivery(enum.Enum):
    """What became of a rule's message at one check."""

    SENT = "sent"  # this worker posted it and the webhook took it
    NOT_NEEDED = "not_needed"  # delivered already (by another worker), or nothing to resolve
    PENDING = "pending"  # refused, unreachable, or another worker is posting: next check


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


def _status(state: RuleState) -> str:
    """The rule's status as delivered messages record it."""
    return "firing" if state.firing else "ok"


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
    #: Without Redis: the status last delivered per rule (Redis holds it otherwise).
    _delivered: dict[str, str] = field(default_factory=dict, init=False)
    #: Per breaker: when its current outage began, as far as this worker saw (epoch seconds).
    _outage_since: dict[str, float] = field(default_factory=dict, init=False)
    _loop: Periodic = field(init=False)

    def __post_init__(self) -> None:
        self.states = {name: RuleState(name) for name in RULES}
        self._loop = Periodic("alert check", self.settings.alert_check_interval_seconds,
                              self.check_once)  # fmt: skip
        for breaker in self.breakers:
            breaker.on_transition(self._on_transition)

    def _on_transition(self, transition: Transition) -> None:
        # Openings are seen here as they happen, between two checks too.
        if transition.to_state == "closed":
            self._outage_since.pop(transition.breaker, None)
        else:
            self._saw_outage(transition.breaker, transition.at.timestamp())

    def _saw_outage(self, name: str, at: float) -> float:
        since = self._outage_since.get(name)
        if since is None or at < since:
            since = self._outage_since[name] = at
        return since

    def _outage_start(self, name: str, snap: Snapshot) -> float | None:
        """When the breaker's current outage began (None: it is closed, or unknown)."""
        if snap.state == CLOSED:
            self._outage_since.pop(name, None)
            return None
        if snap.opened_at is not None:
            return self._saw_outage(name, snap.opened_at)
        return self._outage_since.get(name)

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
            since = self._outage_start(breaker.name, await breaker.snapshot())
            if since is not None:
                open_for = now - since
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
        results["job_backlog"] = await self._job_backlog()
        return results

    async def _job_backlog(self) -> Evaluation:
        threshold = self.settings.alert_job_backlog_seconds
        try:
            async with self.database.session() as session:
                ages = (await count_jobs(session)).oldest_due_seconds
        except Exception as exc:
            # Keep the last verdict: an unreadable table neither fires nor resolves it.
            logger.debug("alert check could not count background jobs: %s", exc)
            state = self.states["job_backlog"]
            return Evaluation(state.firing, state.summary, state.value, threshold)
        if not ages:
            return Evaluation(False, "no background job is waiting", 0.0, threshold)
        task_type, oldest = max(ages.items(), key=lambda item: item[1])
        return Evaluation(
            oldest > threshold,
            f"the oldest queued {task_type} job has waited {math.floor(oldest)} s",
            oldest,
            threshold,
        )

    async def check_once(self) -> list[str]:
        """Evaluate and notify; returns the messages this worker delivered
        (`rule:firing|resolved`), not those another worker delivered or is posting."""
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
            if state.notified:
                continue
            delivery = await self._notify(state)
            if delivery is not Delivery.PENDING:
                state.notified = True
            if delivery is Delivery.SENT:
                sent.append(f"{name}:{'firing' if state.firing else 'resolved'}")
        return sent

    def _key(self, state: RuleState) -> str:
        """The rule's delivered status; its claim is this and `:sending`."""
        return f"{self.settings.redis_namespace}:alert:{state.name}"

    async def _is_delivered(self, redis: Redis, state: RuleState) -> bool:
        value = await redis.get(self._key(state))
        delivered = value.decode() if isinstance(value, bytes) else (value or "ok")
        return bool(delivered == _status(state))

    async def _claim(self, state: RuleState) -> Delivery | Lock | None:
        """The claim this worker posts under (None: it posts without one); a `Delivery`
        when it does not post (see the module docstring for the protocol)."""
        if self.redis is None:
            delivered = self._delivered.get(state.name, "ok") == _status(state)
            return Delivery.NOT_NEEDED if delivered else None
        claim = self.redis.lock(f"{self._key(state)}:sending", CLAIM_SECONDS, blocking=False)
        claimed = False
        try:
            if await self._is_delivered(self.redis, state):
                return Delivery.NOT_NEEDED
            claimed = bool(await claim.acquire())
            if not claimed:
                return Delivery.PENDING
            if not await self._is_delivered(self.redis, state):
                return claim
        except REDIS_DOWN:
            # Better a duplicate message than a silent alert; a claim taken is released after.
            return claim if claimed else None
        await self._release(state, claim, delivered=False)
        return Delivery.NOT_NEEDED

    async def _release(self, state: RuleState, claim: Lock | None, *, delivered: bool) -> None:
        """Record the status as delivered when the post succeeded; give the claim back."""
        if self.redis is None:
            if delivered:
                self._delivered[state.name] = _status(state)
            return
        if delivered:
            with contextlib.suppress(*REDIS_DOWN):
                await self.redis.set(self._key(state), _status(state))
        # Given back even when recording failed, so no worker waits out CLAIM_SECONDS.
        # LockNotOwnedError: the claim expired mid-post (and may be another worker's now).
        if claim is not None:
            with contextlib.suppress(*REDIS_DOWN, LockNotOwnedError):
                await claim.release()

    async def _notify(self, state: RuleState) -> Delivery:
        if not self.settings.alert_webhook_url:
            return Delivery.NOT_NEEDED
        claim = await self._claim(state)
        if isinstance(claim, Delivery):
            return claim
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=SEND_TIMEOUT)
            async with asyncio.timeout(SEND_TIMEOUT):
                response = await self._http.post(
                    self.settings.alert_webhook_url.get_secret_value(), json=self.message(state)
                )
            response.raise_for_status()
        except (httpx.HTTPError, TimeoutError) as exc:
            logger.warning(
                "alert %s could not be delivered (%s): will retry",
                state.name,
                # Not str(exc): an HTTP status error quotes the URL, whose path is the secret.
                f"HTTP {exc.response.status_code}"
                if isinstance(exc, httpx.HTTPStatusError)
                else type(exc).__name__,
            )
            await self._release(state, claim, delivered=False)
            return Delivery.PENDING
        except BaseException:
            await self._release(state, claim, delivered=False)
            raise
        await self._release(state, claim, delivered=True)
        logger.warning(
            "alert %s %s: %s", state.name, "FIRING" if state.firing else "resolved", state.summary
        )
        return Delivery.SENT

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
        self._loop.start()

    async def aclose(self) -> None:
        """Stop checking."""
        await self._loop.aclose()
        if self._http is not None:
            await self._http.aclose()
