"""Task run records and how they are written (the only place that knows that SQL)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from system.db.games import GameRepository
from system.db.jobs import finish as finish_job
from system.db.models import BackgroundJob, BackgroundTaskFailure, BackgroundTaskRun, BoardGame

#: `superseded`: a download that finished for a game deleted or given another URL meanwhile.
Outcome = Literal["success", "failure", "superseded"]
Trigger = Literal["initial", "manual_retry", "auto_retry"]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One run: always a `background_task_runs` row, plus a failure row when it failed.

    `failure_id` names an existing failure this run retried: a success resolves it, a
    failure adds to its `retry_count` instead of creating a second row.
    """

    task_type: str
    game_id: int | None
    outcome: Outcome
    attempts: int
    started_at: datetime
    finished_at: datetime
    trigger: Trigger = "initial"
    url: str | None = None
    error_message: str | None = None
    error_type: str | None = None
    stack_trace: str | None = None
    failure_id: int | None = None
    thumbnail_path: str | None = None
    record_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: The job this run was attempt `job_attempt` of: the record also finishes that job.
    job_id: int | None = None
    job_attempt: int | None = None

    @property
    def duration_ms(self) -> float:
        """How long the run took."""
        return (self.finished_at - self.started_at).total_seconds() * 1000

    def to_json(self) -> dict[str, Any]:
        """Plain data for the spool."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        """The record a spool line holds."""
        values = dict(data)
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        values["finished_at"] = datetime.fromisoformat(values["finished_at"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Written:
    """What `write_task_record` did."""

    #: False when a record with that `record_id` was stored already.
    stored: bool
    #: The outcome stored: a success whose thumbnail no longer fits its game is `superseded`.
    outcome: Outcome
    #: A downloaded file no game points at: the caller removes it once committed.
    orphan: str | None = None


async def write_task_record(session: AsyncSession, record: TaskRecord) -> Written:
    """Store `record` once (`stored` False when its `record_id` is stored already).

    The run row and the failure row go in the caller's transaction together, so a record
    replayed from the spool is either entirely present or entirely absent. A downloaded
    thumbnail lands only on the game (id and URL) it was started for; otherwise the run is
    `superseded` and its file is returned as `orphan`. A superseded retry still resolves its
    failure: there is nothing left to retry for that game and URL.
    """
    seen = await session.scalar(
        select(BackgroundTaskRun.id).where(BackgroundTaskRun.record_id == record.record_id)
    )
    if seen is not None:
        return Written(stored=False, outcome=record.outcome)
    game_id = record.game_id
    if game_id is not None and await session.get(BoardGame, game_id) is None:
        game_id = None  # the game was deleted meanwhile; ON DELETE SET NULL would agree
    if record.job_id is not None and not await _finish_job(session, record):
        # The job was taken over (this worker's lease expired) or is already finished: the
        # run is kept for the record, but the job's result is its current attempt's.
        return await _store_run(session, record, "superseded", game_id, None)
    outcome = record.outcome
    orphan: str | None = None
    failure_id = record.failure_id
    if failure_id is not None and await session.get(BackgroundTaskFailure, failure_id) is None:
        failure_id = None
    if record.outcome == "failure":
        if failure_id is None:
            failure = BackgroundTaskFailure(
                task_type=record.task_type,
                game_id=game_id,
                error_message=record.error_message or "unknown error",
                error_type=record.error_type,
                stack_trace=record.stack_trace,
                retry_count=record.attempts,
                url=record.url,
                resolved=False,
                created_at=record.finished_at,
            )
            session.add(failure)
            await session.flush()
            failure_id = failure.id
            if record.job_id is not None:
                await session.execute(
                    update(BackgroundJob)
                    .where(BackgroundJob.id == record.job_id)
                    .values(failure_id=failure_id)
                )
        else:
            await session.execute(
                update(BackgroundTaskFailure)
                .where(BackgroundTaskFailure.id == failure_id)
                .values(
                    retry_count=BackgroundTaskFailure.retry_count + record.attempts,
                    error_message=record.error_message or "unknown error",
                    error_type=record.error_type,
                    stack_trace=record.stack_trace,
                )
            )
    else:
        if failure_id is not None:
            await session.execute(
                update(BackgroundTaskFailure)
                .where(BackgroundTaskFailure.id == failure_id)
                .where(BackgroundTaskFailure.resolved.is_not(True))
                .values(resolved=True, resolved_at=record.finished_at)
            )
        if record.thumbnail_path is not None:
            games = GameRepository(session)
            landed = game_id is not None and await games.set_thumbnail(
                game_id, record.url, record.thumbnail_path
            )
            if not landed:
                outcome = "superseded"
                if not await games.thumbnail_in_use(record.thumbnail_path):
                    orphan = record.thumbnail_path
    return await _store_run(session, record, outcome, game_id, failure_id, orphan)


async def _finish_job(session: AsyncSession, record: TaskRecord) -> bool:
    assert record.job_id is not None and record.job_attempt is not None
    failed = record.outcome == "failure"
    return await finish_job(
        session,
        job_id=record.job_id,
        attempt=record.job_attempt,
        status="failed" if failed else "done",
        error_type=record.error_type if failed else None,
        error=(record.error_message or "")[:500] if failed else None,
    )


async def _store_run(
    session: AsyncSession,
    record: TaskRecord,
    outcome: Outcome,
    game_id: int | None,
    failure_id: int | None,
    orphan: str | None = None,
) -> Written:
    session.add(
        BackgroundTaskRun(
            record_id=record.record_id,
            task_type=record.task_type,
            game_id=game_id,
            failure_id=failure_id,
            outcome=outcome,
            attempts=record.attempts,
            trigger=record.trigger,
            error_type=record.error_type,
            started_at=record.started_at,
            finished_at=record.finished_at,
            duration_ms=record.duration_ms,
            job_id=record.job_id,
        )
    )
    await session.flush()
    return Written(stored=True, outcome=outcome, orphan=orphan)
