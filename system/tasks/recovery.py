"""Getting failed background tasks done after all: on demand, and after an outage by itself.

- `retry(failure_id)` re-runs one failed task now (the admin `.../retry` route).
- When a breaker goes from open back to closed, the transient failures of its dependency
  recorded since it opened are retried, `BACKGROUND_CONCURRENCY` at a time, each at most
  `AUTO_RETRY_MAX` times in all. Only the worker whose trial closed the breaker does this, so
  several workers do not retry the same failures.
- An outage can end with nobody calling the dependency (no imports, so no thumbnails), and an
  open breaker only half-opens when called. So every `RECOVERY_CHECK_SECONDS` a breaker that
  is open past its reset timeout, with transient failures waiting, gets one of them retried:
  that retry is the half-open trial, and its success closes the breaker and retries the rest.

Which failures belong to the outage ("recorded since it opened"): those recorded from
`AUTO_RETRY_LOOKBACK_SECONDS` before the breaker opened until the retry starts. The look-back
before the opening takes in the failures that opened it (all but the last are recorded
before it opens), and an outage of any length is covered. The
opening time is the earliest this worker saw for the outage: a transition to open or
half-open it made or noticed, or the `opened_at` of the shared state the periodic check reads
(every worker reads it every `RECOVERY_CHECK_SECONDS`, so it learns of another worker's
opening within that time). A failed half-open trial re-opens the breaker with a new
`opened_at`; the earliest one seen is kept until the breaker closes. A worker that started
while the breaker was open may only see such a later `opened_at`, and one that knows of no
opening at all (the breaker closed from a state it never saw) uses the look-back from now.
Either way the window reaches at least `AUTO_RETRY_LOOKBACK_SECONDS` back, as before.

A sweep reads its candidates in batches, oldest first by `(created_at, id)` (keyset, so each
batch is an index range scan however many failures the outage left), with the per-failure
cap in the query, so failures that have used up their retries never crowd out those that
have not. It ends when no candidate is left, and stops early when the breaker opens again:
retrying into an open breaker would only spend the failures' retries on rejections. The
window of a sweep cut short is kept (by this worker) and joins the next sweep's, so the
failures it did not reach are retried when the breaker closes again, however long the next
outage lasts.

The probe's retries count towards `AUTO_RETRY_MAX` like the sweep's. An outage long enough
for failed probes to use up the retries of every failure waiting leaves nothing to probe
with: the breaker then closes with the next real call, and those failures need a manual retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select

from system.clock import utcnow
from system.db.database import Database
from system.db.failures import FailureRepository
from system.db.jobs import enqueue
from system.db.models import BackgroundJob, BackgroundTaskFailure
from system.db.tasks import Trigger
from system.periodic import Periodic
from system.resilience.breaker import AsyncCircuitBreaker, Transition
from system.resilience.store import CLOSED, OPEN
from system.tasks.classification import TRANSIENT_ERROR_TYPES
from system.tasks.recording import Recorded, TaskRecorder
from system.tasks.runner import TaskRunner
from system.tasks.thumbnails import ThumbnailDownloader, run_thumbnail_task

logger = logging.getLogger(__name__)

#: Candidates read per query during a sweep.
BATCH_SIZE = 100

#: A failure's position in the oldest-first order of a sweep.
Key = tuple[datetime, int]


class NotRetryable(Exception):
    """The failure cannot be re-run (already resolved, game gone, unknown task type)."""


#: Where a retry's run went: its record `stored`, `spooled` or `lost`, or the retry was
#: `queued` as a background job (its run is recorded when a worker has run it).
Retried = Recorded | Literal["queued"]


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What a retry did."""

    failure_id: int
    succeeded: bool
    #: Where the run's record went: only `stored` is visible (resolved, or counted) yet.
    recorded: Retried
    #: The retry job, when the retry was queued.
    job_id: int | None = None


@dataclass(frozen=True, slots=True)
class Sweep:
    """What a sweep did with the failures it retried. Only a `stored` record is visible, so
    a success whose record waits in the spool (or was lost) is not counted as resolved."""

    #: Retries made (failures gone or not retryable meanwhile are not counted).
    tried: int = 0
    #: Succeeded, and the run is stored: the failure is resolved.
    resolved: int = 0
    #: Failed again, and the run is stored.
    failed: int = 0
    #: The run's record went to the spool: resolved (or not) once the spool is replayed.
    spooled: int = 0
    #: The run's record was stored nowhere.
    lost: int = 0
    #: Queued as retry jobs: resolved (or not) once a worker has run them.
    queued: int = 0

    def __add__(self, other: Sweep) -> Sweep:
        return Sweep(
            self.tried + other.tried,
            self.resolved + other.resolved,
            self.failed + other.failed,
            self.spooled + other.spooled,
            self.lost + other.lost,
            self.queued + other.queued,
        )

    @staticmethod
    def of(outcome: RetryOutcome | None) -> Sweep:
        """One retry's count (None: not retried)."""
        if outcome is None:
            return Sweep()
        if outcome.recorded == "spooled":
            return Sweep(tried=1, spooled=1)
        if outcome.recorded == "lost":
            return Sweep(tried=1, lost=1)
        if outcome.recorded == "queued":
            return Sweep(tried=1, queued=1)
        if outcome.succeeded:
            return Sweep(tried=1, resolved=1)
        return Sweep(tried=1, failed=1)


#: Re-runs one failed task, or queues its re-run (raising `NotRetryable` when it cannot be):
#: whether it succeeded, where its record went, and the retry job if it was queued.
Retrier = Callable[[BackgroundTaskFailure, Trigger], Awaitable[tuple[bool, Retried, int | None]]]


def thumbnail_retrier(downloader: ThumbnailDownloader, recorder: TaskRecorder) -> Retrier:
    """Re-runs a failed thumbnail download for the game and URL its failure row names."""

    async def retry(
        failure: BackgroundTaskFailure, trigger: Trigger
    ) -> tuple[bool, Retried, int | None]:
        if failure.game_id is None:
            raise NotRetryable(f"The game of background failure {failure.id} no longer exists")
        if not failure.url:
            raise NotRetryable(f"Background failure {failure.id} has no URL to download")
        run = await run_thumbnail_task(
            downloader,
            recorder,
            game_id=failure.game_id,
            url=failure.url,
            trigger=trigger,
            failure_id=failure.id,
        )
        return run.succeeded, run.recorded, None

    return retry


def job_retrier(
    database: Database,
    *,
    task_type: str,
    max_attempts: int,
    on_enqueued: Callable[[], None],
) -> Retrier:
    """Queues the re-run of a failed job as a new job with the failed one's payload, keyed
    `retry:<failure id>` (one live retry per failure, across processes). Its run resolves the
    failure, or adds to its `retry_count`, as any retry's does."""

    async def retry(
        failure: BackgroundTaskFailure, trigger: Trigger
    ) -> tuple[bool, Retried, int | None]:
        async with database.session() as session:
            payload = await session.scalar(
                select(BackgroundJob.payload)
                .where(BackgroundJob.failure_id == failure.id)
                .where(BackgroundJob.task_type == task_type)
                .order_by(BackgroundJob.id)
                .limit(1)
            )
            if payload is None:
                raise NotRetryable(
                    f"Background failure {failure.id} has no job to re-run (its payload is gone)"
                )
            queued = await enqueue(
                session,
                task_type=task_type,
                payload=payload,
                max_attempts=max_attempts,
                dedupe_key=f"retry:{failure.id}",
                trigger=trigger,
                failure_id=failure.id,
            )
        on_enqueued()
        return False, "queued", queued.id

    return retry


class Recovery:
    """Re-runs failed tasks of one task type; owns their automatic retry after outages of
    the dependency behind `breaker` (one `Recovery` per dependency: the CDN's thumbnails,
    BGG's imports)."""

    def __init__(
        self,
        *,
        database: Database,
        breaker: AsyncCircuitBreaker,
        task_type: str,
        retrier: Retrier,
        runner: TaskRunner,
        auto_retry_max: int,
        lookback_seconds: float,
        check_seconds: float,
        concurrency: int,
        error_types: frozenset[str] = TRANSIENT_ERROR_TYPES,
        batch_size: int = BATCH_SIZE,
        probe: bool = True,
    ) -> None:
        self.database = database
        self.breaker = breaker
        self.task_type = task_type
        self.retrier = retrier
        self.runner = runner
        self.error_types = error_types
        self.auto_retry_max = auto_retry_max
        self.lookback = timedelta(seconds=lookback_seconds)
        self.concurrency = concurrency
        self.batch_size = batch_size
        #: When the current outage began, as far as this worker knows (None: no outage seen).
        self._outage_since: datetime | None = None
        #: The window start of a sweep cut short, until a sweep covers it.
        self._unfinished_since: datetime | None = None
        #: Failures being retried in this worker now.
        self._in_flight: set[int] = set()
        self._sweeping = asyncio.Lock()
        self._loop = (
            Periodic(f"recovery probe ({breaker.name})", check_seconds, self.probe_once)
            if probe
            else None
        )
        breaker.on_transition(self._on_transition)

    async def retry(self, failure_id: int, *, trigger: Trigger = "manual_retry") -> RetryOutcome:
        """Re-run one failed task now; raises LookupError (unknown) or NotRetryable.

        A failure being retried here already is not retried a second time meanwhile: the
        retry that closes the breaker starts a sweep, which could otherwise read that failure
        before the retry has recorded its success.
        """
        if failure_id in self._in_flight:
            raise NotRetryable(f"Background failure {failure_id} is being retried already")
        self._in_flight.add(failure_id)
        try:
            async with self.database.session() as session:
                failure = await FailureRepository(session).get(failure_id)
                if failure is None:
                    raise LookupError(failure_id)
                if failure.resolved:
                    raise NotRetryable(f"Background failure {failure.id} is already resolved")
                if failure.task_type != self.task_type:
                    raise NotRetryable(f"Tasks of type {failure.task_type!r} cannot be re-run")
            succeeded, recorded, job_id = await self.retrier(failure, trigger)
        finally:
            self._in_flight.discard(failure_id)
        return RetryOutcome(failure_id, succeeded, recorded, job_id)

    @property
    def outage_since(self) -> datetime | None:
        """When the current outage of the dependency began, as far as this worker knows."""
        return self._outage_since

    def window_start(self, now: datetime | None = None) -> datetime:
        """The oldest failure the automatic retry takes now (see the module docstring)."""
        start = (self._outage_since or now or utcnow()) - self.lookback
        if self._unfinished_since is not None:
            start = min(start, self._unfinished_since)
        return start

    def _saw_opening(self, at: datetime) -> None:
        if self._outage_since is None or at < self._outage_since:
            self._outage_since = at

    def _on_transition(self, transition: Transition) -> None:
        if transition.to_state != "closed":
            self._saw_opening(transition.at)
            return
        since = self.window_start()
        self._outage_since = None
        if transition.local:
            logger.info("%s recovered: retrying its transient failures", transition.breaker)
            self.runner.submit(self.sweep(since=since), name="auto-retry")

    async def _batch(
        self, since: datetime, until: datetime, *, after: Key | None, limit: int
    ) -> Sequence[Key]:
        """Up to `limit` candidates recorded in [since, until], oldest first, after `after`:
        unresolved transient failures of this task type with automatic retries left."""
        async with self.database.session() as session:
            return await FailureRepository(session).retry_candidates(
                task_type=self.task_type,
                error_types=self.error_types,
                since=since,
                until=until,
                max_auto_retries=self.auto_retry_max,
                after=after,
                limit=limit,
            )

    async def candidates(self, *, limit: int | None = None) -> list[int]:
        """The ids of the first candidates a sweep starting now would retry, oldest first."""
        rows = await self._batch(
            self.window_start(), utcnow(), after=None, limit=limit or self.batch_size
        )
        return [failure_id for _, failure_id in rows]

    def _closed(self) -> bool:
        return self.breaker.last_known_state == CLOSED

    async def sweep(self, *, since: datetime | None = None) -> Sweep:
        """Retry every candidate recorded from `since` (default: `window_start()`) until now,
        `concurrency` at a time, batch after batch; returns what became of the retries."""
        async with self._sweeping:
            since = since if since is not None else self.window_start()
            until = utcnow()
            gate = asyncio.Semaphore(self.concurrency)

            async def one(failure_id: int) -> RetryOutcome | None:
                async with gate:
                    if not self._closed():
                        return None  # it opened again: a rejection would only spend a retry
                    try:
                        return await self.retry(failure_id, trigger="auto_retry")
                    except (LookupError, NotRetryable):
                        return None

            after: Key | None = None
            done = Sweep()
            finished = False
            while self._closed():
                try:
                    batch = await self._batch(since, until, after=after, limit=self.batch_size)
                except Exception:
                    logger.exception("automatic retry: could not read the failures")
                    break
                if not batch:
                    finished = True
                    break
                after = batch[-1]
                results = await asyncio.gather(*(one(failure_id) for _, failure_id in batch))
                for result in results:
                    done += Sweep.of(result)
            if finished:
                if self._unfinished_since is not None and since <= self._unfinished_since:
                    self._unfinished_since = None
            else:
                self._unfinished_since = min(since, self._unfinished_since or since)
                logger.warning(
                    "automatic retry stopped (the breaker opened again or the database failed);"
                    " the rest waits for the next recovery"
                )
            if done.tried:
                logger.info(
                    "automatic retry: %d of %d resolved, %d failed again",
                    done.resolved,
                    done.tried,
                    done.failed,
                )
            if done.queued:
                logger.info("automatic retry: %d retries queued as background jobs", done.queued)
            if done.spooled or done.lost:
                # Not resolved yet (spooled: once replayed) or never (lost): an operator who
                # reads "resolved" above must not count these.
                logger.warning(
                    "automatic retry: %d runs spooled (not visible until replayed), %d lost",
                    done.spooled,
                    done.lost,
                )
            return done

    async def probe_once(self) -> bool:
        """If the breaker is open past its reset timeout with failures waiting, retry one
        (as the breaker's trial). True when a probe was made."""
        snap = await self.breaker.snapshot()
        if snap.state != CLOSED and snap.opened_at is not None:
            self._saw_opening(datetime.fromtimestamp(snap.opened_at, UTC))
        if snap.state != OPEN or self.breaker.seconds_until_half_open(snap):
            return False
        pending = await self._batch(self.window_start(), utcnow(), after=None, limit=1)
        if not pending:
            return False
        await self.retry(pending[0][1], trigger="auto_retry")
        return True

    def start(self) -> None:
        """Start the periodic probe, if this recovery has one (the lifespan calls this)."""
        if self._loop is not None:
            self._loop.start()

    async def aclose(self) -> None:
        """Stop the periodic probe."""
        if self._loop is not None:
            await self._loop.aclose()
