"""`bgg_import` jobs: the bulk import's unit of work (docs/design/0001-job-queue.md, Decision 5).

A job fetches one game with the same `BggClient` as the single import (retries, deadline,
breaker), outside any transaction, then ends with one *finish* transaction: the game upsert
by `bgg_id`, its thumbnail job (deduped), the run record and the job's fenced end
(`write_task_record` with `job_id`). A `done` job means its game is in; a finish whose fence
fails (the lease was lost) rolls back entirely, the work belongs to the new owner. Twice is
harmless: one game, one live thumbnail job.

A BGG error after the client's attempts is one failure row (`game_id` NULL, the error class,
its message, the request URL, which never holds the API token, and the client's attempts as
`retry_count`). An open breaker is not a failure: the job is handed back, due when the breaker
may half-open, without spending its attempt; so is a job whose retries the breaker cut short
by opening on its failure (the failure that tripped it, or a failed half-open trial).
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic import Field as PydanticField
from sqlalchemy.ext.asyncio import AsyncSession

from system.bgg.errors import BggError, BggUnavailable
from system.clock import utcnow
from system.db.errors import describe, is_unavailable
from system.db.jobs import ClaimedJob, Enqueued, enqueue, enqueue_many, hold
from system.db.tasks import TaskRecord, Trigger, write_task_record
from system.importer import GameImporter
from system.resilience.store import CLOSED
from system.tasks.pool import InvalidJobPayload, JobPool
from system.tasks.recording import TaskRecorder

logger = logging.getLogger(__name__)

TASK_TYPE = "bgg_import"

#: The hand-back reason a job waiting on the open BGG breaker is queued with.
BREAKER_OPEN = "breaker_open"


def import_key(bgg_id: int) -> str:
    """The dedupe key of a `bgg_import` job: one live import per BGG id."""
    return f"{TASK_TYPE}:{bgg_id}"


async def enqueue_import(
    session: AsyncSession,
    bgg_id: int,
    *,
    max_attempts: int,
    trigger: Trigger = "initial",
    failure_id: int | None = None,
) -> Enqueued:
    """Queue the import of `bgg_id` in the caller's transaction; a live job for that id is
    returned instead of a second one (`existing`)."""
    return await enqueue(
        session,
        task_type=TASK_TYPE,
        payload={"bgg_id": bgg_id},
        max_attempts=max_attempts,
        dedupe_key=import_key(bgg_id),
        trigger=trigger,
        failure_id=failure_id,
    )


async def enqueue_imports(
    session: AsyncSession, bgg_ids: Sequence[int], *, max_attempts: int
) -> list[Enqueued]:
    """`enqueue_import` for many distinct ids at once (the bulk import), in order."""
    return await enqueue_many(
        session,
        task_type=TASK_TYPE,
        jobs=[({"bgg_id": bgg_id}, import_key(bgg_id)) for bgg_id in bgg_ids],
        max_attempts=max_attempts,
    )


class ImportJob(BaseModel):
    """A `bgg_import` job's payload."""

    model_config = ConfigDict(extra="forbid", strict=True)

    bgg_id: int = PydanticField(ge=1)


class _FenceLost(Exception):
    """The finish found the job no longer ours: roll the whole finish back."""


def import_handler(
    importer: GameImporter,
    recorder: TaskRecorder,
    pool: JobPool,
    *,
    jitter: Callable[[], float] = random.random,
) -> Callable[[ClaimedJob], Awaitable[None]]:
    """The job pool's handler for `bgg_import` jobs. `jitter()` (0-1 s) spreads the jobs an
    open breaker hands back, so they do not all come due in the same instant."""

    async def handle(job: ClaimedJob) -> None:
        try:
            payload = ImportJob.model_validate(job.payload)
        except ValidationError as exc:
            raise InvalidJobPayload(_validation_summary(exc)) from None
        max_id = importer.bgg.max_id
        if payload.bgg_id > max_id:
            raise InvalidJobPayload(f"bgg_id: must be between 1 and {max_id}")
        await run_import_job(importer, recorder, pool, job, payload.bgg_id, jitter=jitter)

    return handle


async def run_import_job(
    importer: GameImporter,
    recorder: TaskRecorder,
    pool: JobPool,
    job: ClaimedJob,
    bgg_id: int,
    *,
    jitter: Callable[[], float] = random.random,
) -> None:
    """Fetch `bgg_id` and finish `job` with the game, or with one failure row, or hand it
    back while the breaker is open. Raises only what the pool records as a crash."""
    started = utcnow()
    base: dict[str, Any] = {
        "task_type": TASK_TYPE,
        "started_at": started,
        "trigger": job.trigger,
        "url": importer.bgg.thing_url(bgg_id),
        "failure_id": job.failure_id,
        "record_id": job.record_id,
        "job_id": job.id,
        "job_attempt": job.attempt,
    }
    try:
        fetched, attempts = await importer.bgg.fetch_thing_with_attempts(bgg_id)
    except BggUnavailable as exc:
        # Not the job's fault and not BGG's answer: it waits for the breaker, attempt kept.
        delay = exc.retry_after + jitter()
        if not await pool.hand_back(job, delay_seconds=delay, reason=BREAKER_OPEN):
            logger.warning("bgg_import job %s: lost its lease before it could wait", job.id)
        return
    except BggError as exc:
        if _cut_short_by_breaker(importer, exc):
            # The breaker opened on this failure (the one that tripped it, or a failed
            # half-open trial), so the client stopped retrying: the outage, not this job's
            # error. It waits like a job the breaker turned away, attempt kept, no row.
            delay = importer.bgg.breaker.reset_timeout + jitter()
            if not await pool.hand_back(job, delay_seconds=delay, reason=BREAKER_OPEN):
                logger.warning("bgg_import job %s: lost its lease before it could wait", job.id)
            return
        await recorder.record(
            TaskRecord(
                game_id=None,
                outcome="failure",
                attempts=max(1, exc.attempts),
                finished_at=utcnow(),
                error_message=exc.message,
                error_type=type(exc).__name__,
                stack_trace="".join(traceback.format_exception(exc)),
                **base,
            )
        )
        return
    try:
        async with importer.database.session() as session:
            if not await hold(session, job_id=job.id, attempt=job.attempt):
                raise _FenceLost
            stored = await importer.store(session, fetched)
            record = TaskRecord(
                game_id=stored.game.id,
                outcome="success",
                attempts=attempts,
                finished_at=utcnow(),
                **base,
            )
            written = await write_task_record(session, record)
            if written.stored and written.outcome == "superseded":
                raise _FenceLost
    except _FenceLost:
        logger.warning("bgg_import job %s: taken over before its finish; nothing kept", job.id)
        return
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The game cannot be kept without its finish, so nothing goes to the spool: the job
        # waits in the queue (or, if that write fails too, its lease runs out) and runs again.
        logger.warning(
            "bgg_import job %s: database unavailable at finish: %s", job.id, describe(exc)
        )
        try:
            await pool.hand_back(job, delay_seconds=pool.poll_seconds, reason="database")
        except Exception as again:
            logger.warning("bgg_import job %s: not handed back: %s", job.id, describe(again))
        return
    recorder.notify(record)
    if stored.queued:
        importer.on_enqueued()


def _cut_short_by_breaker(importer: GameImporter, exc: BggError) -> bool:
    """Whether `exc` ended the fetch before its retries ran out only because the BGG breaker
    is no longer closed (the client does not retry into an open breaker)."""
    bgg = importer.bgg
    return (
        exc.retryable
        and exc.breaker_failure
        and exc.attempts < bgg.policy.attempts
        and bgg.breaker.last_known_state != CLOSED
    )


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
        for error in exc.errors()
    )
