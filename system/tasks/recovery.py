"""Getting failed background tasks done after all: on demand, and after an outage by itself.

- `retry(failure_id)` re-runs one failed task now (the admin `.../retry` route).
- When a breaker goes from open back to closed, the transient failures of its dependency
  recorded in the last `AUTO_RETRY_LOOKBACK_SECONDS` are retried, `BACKGROUND_CONCURRENCY` at
  a time, each at most `AUTO_RETRY_MAX` times in all. Only the worker whose trial closed the
  breaker does this, so several workers do not retry the same failures.
- An outage can end with nobody calling the dependency (no imports, so no thumbnails), and an
  open breaker only half-opens when called. So every `RECOVERY_CHECK_SECONDS` a breaker that
  is open past its reset timeout, with transient failures waiting, gets one of them retried:
  that retry is the half-open trial, and its success closes the breaker and retries the rest.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from system.clock import utcnow
from system.db.database import Database
from system.db.failures import FailureFilter, FailureRepository
from system.db.models import BackgroundTaskFailure
from system.db.tasks import Trigger
from system.resilience.breaker import AsyncCircuitBreaker, Transition
from system.resilience.store import OPEN
from system.tasks.classification import TRANSIENT_ERROR_TYPES, classify
from system.tasks.recording import TaskRecorder
from system.tasks.runner import TaskRunner
from system.tasks.thumbnails import TASK_TYPE as THUMBNAIL_TASK
from system.tasks.thumbnails import ThumbnailDownloader, run_thumbnail_task

logger = logging.getLogger(__name__)


class NotRetryable(Exception):
    """The failure cannot be re-run (already resolved, game gone, unknown task type)."""


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What a retry did."""

    failure_id: int
    succeeded: bool


class Recovery:
    """Re-runs failed tasks; owns the automatic retry after outages."""

    def __init__(
        self,
        *,
        database: Database,
        downloader: ThumbnailDownloader,
        recorder: TaskRecorder,
        runner: TaskRunner,
        cdn_breaker: AsyncCircuitBreaker,
        auto_retry_max: int,
        lookback_seconds: float,
        check_seconds: float,
        concurrency: int,
    ) -> None:
        self.database = database
        self.downloader = downloader
        self.recorder = recorder
        self.runner = runner
        self.cdn_breaker = cdn_breaker
        self.auto_retry_max = auto_retry_max
        self.lookback = timedelta(seconds=lookback_seconds)
        self.check_seconds = check_seconds
        self.concurrency = concurrency
        self._sweeping = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        cdn_breaker.on_transition(self._on_transition)

    async def retry(self, failure_id: int, *, trigger: Trigger = "manual_retry") -> RetryOutcome:
        """Re-run one failed task now; raises LookupError (unknown) or NotRetryable."""
        async with self.database.session() as session:
            failure = await FailureRepository(session).get(failure_id)
            if failure is None:
                raise LookupError(failure_id)
            game_id, url = self._check_retryable(failure)
        ok = await run_thumbnail_task(
            self.downloader,
            self.recorder,
            game_id=game_id,
            url=url,
            trigger=trigger,
            failure_id=failure_id,
        )
        return RetryOutcome(failure_id, ok)

    @staticmethod
    def _check_retryable(failure: BackgroundTaskFailure) -> tuple[int, str]:
        if failure.resolved:
            raise NotRetryable(f"Background failure {failure.id} is already resolved")
        if failure.task_type != THUMBNAIL_TASK:
            raise NotRetryable(f"Tasks of type {failure.task_type!r} cannot be re-run")
        if failure.game_id is None:
            raise NotRetryable(f"The game of background failure {failure.id} no longer exists")
        if not failure.url:
            raise NotRetryable(f"Background failure {failure.id} has no URL to download")
        return failure.game_id, failure.url

    def _on_transition(self, transition: Transition) -> None:
        if transition.local and transition.to_state == "closed":
            logger.info("%s recovered: retrying its transient failures", transition.breaker)
            self.runner.submit(self.sweep(), name="auto-retry")

    async def candidates(self, *, limit: int = 500) -> list[int]:
        """Unresolved transient thumbnail failures of the look-back window, oldest first,
        that have not used up their automatic retries."""
        since = utcnow() - self.lookback
        where = FailureFilter(
            resolved=False,
            task_type=THUMBNAIL_TASK,
            since=since,
            error_types=TRANSIENT_ERROR_TYPES,
        )
        async with self.database.session() as session:
            repository = FailureRepository(session)
            failures = list(reversed(await repository.list(where, limit=limit)))
            used = await repository.automatic_retries([f.id for f in failures])
        return [
            f.id
            for f in failures
            if classify(f.error_type) == "transient" and used.get(f.id, 0) < self.auto_retry_max
        ]

    async def sweep(self) -> int:
        """Retry every candidate, `concurrency` at a time; returns how many succeeded."""
        async with self._sweeping:
            try:
                pending = await self.candidates()
            except Exception:
                logger.exception("automatic retry: could not read the failures")
                return 0
            gate = asyncio.Semaphore(self.concurrency)

            async def one(failure_id: int) -> bool:
                async with gate:
                    try:
                        outcome = await self.retry(failure_id, trigger="auto_retry")
                    except (LookupError, NotRetryable):
                        return False
                    return outcome.succeeded

            results = await asyncio.gather(*(one(f) for f in pending))
            if pending:
                logger.info("automatic retry: %d of %d succeeded", sum(results), len(pending))
            return sum(results)

    async def probe_once(self) -> bool:
        """If the CDN breaker is open past its reset timeout with failures waiting, retry one
        (as the breaker's trial). True when a probe was made."""
        snap = await self.cdn_breaker.snapshot()
        if snap.state != OPEN or self.cdn_breaker.seconds_until_half_open(snap):
            return False
        pending = await self.candidates(limit=1)
        if not pending:
            return False
        await self.retry(pending[0], trigger="auto_retry")
        return True

    def start(self) -> None:
        """Start the periodic probe (the lifespan calls this)."""
        self._loop = asyncio.create_task(self._run(), name="recovery-probe")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.probe_once()
            except Exception:
                logger.exception("recovery probe failed")

    async def aclose(self) -> None:
        """Stop the periodic probe."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
