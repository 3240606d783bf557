"""The job queue's SQL (the only place that knows it): enqueue, claim, renew, finish, hand back.

Every lease and `run_after` comparison uses the database's clock (`db_now`), never a
worker's: workers on several machines disagree about the time, one clock they all read
cannot. Claiming is one statement with `FOR UPDATE SKIP LOCKED` on PostgreSQL, and one
`BEGIN IMMEDIATE` transaction on SQLite (the write lock is the claim lock; one host only).
Every write that ends or hands back a job is fenced on `attempts`, which each claim
increments: a worker that lost its lease changes no row, whatever its clock says.
Design and prior art: docs/design/0001-job-queue.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    Interval,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from system.db.models import (
    LIVE_DEDUPE_PREDICATE,
    LIVE_JOB_STATES,
    BackgroundJob,
    BackgroundTaskFailure,
)
from system.db.types import UTCDateTime

JobStatus = Literal["queued", "running", "done", "failed"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "done", "failed")

#: Namespace of run record ids: one attempt of one job is one `background_task_runs` row.
JOB_RECORD_NAMESPACE = uuid.UUID("6b3f7a52-3c1e-4f0e-9d7a-0b9a3c2e8f11")

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


def record_id_for(job_id: int, attempt: int) -> str:
    """The run record id of attempt `attempt` of job `job_id` (same attempt, same row)."""
    return str(uuid.uuid5(JOB_RECORD_NAMESPACE, f"{job_id}:{attempt}"))


def db_now(dialect: str, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's current UTC time, optionally `plus_seconds` later, as SQL."""
    if dialect == "sqlite":
        if plus_seconds:
            return func.strftime(_SQLITE_FORMAT, "now", f"{plus_seconds:+.3f} seconds")
        return func.strftime(_SQLITE_FORMAT, "now")
    now: ColumnElement[datetime] = func.now()
    if plus_seconds:
        return now + literal(timedelta(seconds=plus_seconds), Interval)
    return now


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A job `enqueue` wrote, or the live job with the same dedupe key it found instead."""

    id: int
    existing: bool


async def enqueue(
    session: AsyncSession,
    *,
    task_type: str,
    payload: dict[str, Any],
    max_attempts: int,
    dedupe_key: str | None = None,
    trigger: str = "initial",
    failure_id: int | None = None,
    delay_seconds: float = 0.0,
) -> Enqueued:
    """Queue a job inside the caller's transaction (committed with the caller's change).

    A live (queued or running) job with the same `dedupe_key` is returned instead of a new
    one. `ON CONFLICT DO NOTHING` does not abort a PostgreSQL transaction as an
    IntegrityError would, so the caller's other writes survive a duplicate.
    """
    dialect = _dialect(session)
    now = db_now(dialect)
    values = {
        "task_type": task_type,
        "payload": payload,
        "trigger": trigger,
        "status": "queued",
        "attempts": 0,
        "max_attempts": max_attempts,
        "lease_expiries": 0,
        "run_after": db_now(dialect, delay_seconds) if delay_seconds else now,
        "dedupe_key": dedupe_key,
        "failure_id": failure_id,
        "created_at": now,
        "updated_at": now,
    }
    table = cast(Table, BackgroundJob.__table__)
    # The conflict target repeats the partial index's predicate, as literal SQL.
    live = text(LIVE_DEDUPE_PREDICATE)
    for _ in range(3):
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(values)
        if dedupe_key is not None:
            insert = insert.on_conflict_do_nothing(index_elements=["dedupe_key"], index_where=live)
        new_id = await session.scalar(insert.returning(BackgroundJob.id))
        if new_id is not None:
            return Enqueued(int(new_id), existing=False)
        found = await session.scalar(
            select(BackgroundJob.id).where(
                BackgroundJob.dedupe_key == dedupe_key,
                BackgroundJob.status.in_(LIVE_JOB_STATES),
            )
        )
        if found is not None:
            return Enqueued(int(found), existing=True)
        # The live job finished between the insert and the look-up: its key is free again.
    raise RuntimeError(f"could not enqueue {task_type} job with key {dedupe_key!r}")


#: Rows per INSERT of `enqueue_many` (12 bound values a row stays far below SQLite's limit).
_ENQUEUE_CHUNK = 500


async def enqueue_many(
    session: AsyncSession,
    *,
    task_type: str,
    jobs: Sequence[tuple[dict[str, Any], str]],
    max_attempts: int,
) -> list[Enqueued]:
    """`enqueue` for many `(payload, dedupe_key)` pairs (distinct keys) in the caller's
    transaction, answered in the same order: one INSERT per 500 jobs, one look-up for the
    keys already live, instead of a round trip or two per job."""
    dialect = _dialect(session)
    table = cast(Table, BackgroundJob.__table__)
    live = text(LIVE_DEDUPE_PREDICATE)
    found: dict[str, Enqueued] = {}
    for start in range(0, len(jobs), _ENQUEUE_CHUNK):
        chunk = jobs[start : start + _ENQUEUE_CHUNK]
        now = db_now(dialect)
        rows = [
            {
                "task_type": task_type,
                "payload": payload,
                "trigger": "initial",
                "status": "queued",
                "attempts": 0,
                "max_attempts": max_attempts,
                "lease_expiries": 0,
                "run_after": now,
                "dedupe_key": key,
                "created_at": now,
                "updated_at": now,
            }
            for payload, key in chunk
        ]
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(rows)
        insert = insert.on_conflict_do_nothing(index_elements=["dedupe_key"], index_where=live)
        for row in await session.execute(
            insert.returning(BackgroundJob.id, BackgroundJob.dedupe_key)
        ):
            found[row.dedupe_key] = Enqueued(int(row.id), existing=False)
        missing = [key for _, key in chunk if key not in found]
        if missing:
            for row in await session.execute(
                select(BackgroundJob.id, BackgroundJob.dedupe_key).where(
                    BackgroundJob.dedupe_key.in_(missing),
                    BackgroundJob.status.in_(LIVE_JOB_STATES),
                )
            ):
                found[row.dedupe_key] = Enqueued(int(row.id), existing=True)
    answer = []
    for payload, key in jobs:
        if key not in found:
            # Its live job finished between the insert and the look-up: the key is free.
            found[key] = await enqueue(
                session,
                task_type=task_type,
                payload=payload,
                max_attempts=max_attempts,
                dedupe_key=key,
            )
        answer.append(found[key])
    return answer


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker holds a lease on, for attempt `attempt`."""

    id: int
    task_type: str
    payload: Any
    trigger: str
    attempt: int
    max_attempts: int
    failure_id: int | None
    #: True when the previous holder's lease expired (its worker died or stalled).
    taken_over: bool

    @property
    def record_id(self) -> str:
        """The run record id of this attempt."""
        return record_id_for(self.id, self.attempt)


_RETURNED = (
    BackgroundJob.id,
    BackgroundJob.task_type,
    BackgroundJob.payload,
    BackgroundJob.trigger,
    BackgroundJob.attempts,
    BackgroundJob.max_attempts,
    BackgroundJob.failure_id,
)


def _claimable(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    return or_(
        and_(BackgroundJob.status == "queued", BackgroundJob.run_after <= now),
        and_(BackgroundJob.status == "running", BackgroundJob.lease_expires_at < now),
    )


async def claim(
    engine: AsyncEngine,
    *,
    owner: str,
    limit: int,
    lease_seconds: float,
    exclude_types: Collection[str] = (),
    only_types: Collection[str] | None = None,
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs (queued and due, or running with an expired lease).

    Each claim counts as an attempt; taking over an expired lease also counts a lease expiry.
    Two claimers never get one job and never wait on each other's rows. `exclude_types`
    leaves those task types alone; `only_types` (when given) claims none but those.
    """
    if limit <= 0 or (only_types is not None and not only_types):
        return []
    dialect = engine.dialect.name
    now = db_now(dialect)
    where = _claimable(now)
    if exclude_types:
        where = and_(where, BackgroundJob.task_type.not_in(list(exclude_types)))
    if only_types is not None:
        where = and_(where, BackgroundJob.task_type.in_(list(only_types)))
    if dialect == "postgresql":
        return await _claim_postgres(engine, owner, limit, lease_seconds, where)
    return await _claim_sqlite(engine, owner, limit, lease_seconds, where)


def _claim_values(
    dialect: str, owner: str, lease_seconds: float, taken_over: Any
) -> dict[str, Any]:
    now = db_now(dialect)
    return {
        "status": "running",
        "attempts": BackgroundJob.attempts + 1,
        "lease_expiries": BackgroundJob.lease_expiries + case((taken_over, 1), else_=0),
        "lease_owner": owner,
        "lease_expires_at": db_now(dialect, lease_seconds),
        "started_at": now,
        "updated_at": now,
    }


async def _claim_postgres(
    engine: AsyncEngine, owner: str, limit: int, lease_seconds: float, where: Any
) -> list[ClaimedJob]:
    candidate = (
        select(BackgroundJob.id, BackgroundJob.status.label("previous_status"))
        .where(where)
        .order_by(BackgroundJob.run_after, BackgroundJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidate")
    )
    taken_over = candidate.c.previous_status == "running"
    statement = (
        update(BackgroundJob)
        .where(BackgroundJob.id == candidate.c.id)
        .values(_claim_values("postgresql", owner, lease_seconds, taken_over))
        .returning(*_RETURNED, taken_over.label("taken_over"))
    )
    async with engine.begin() as conn:
        rows = (await conn.execute(statement)).all()
    return sorted((_claimed(row) for row in rows), key=lambda job: job.id)


async def _claim_sqlite(
    engine: AsyncEngine, owner: str, limit: int, lease_seconds: float, where: Any
) -> list[ClaimedJob]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # A read first, without the write lock: an idle poll then costs every process no
        # write lock at all (the one writer is the service's scarcest resource on SQLite).
        if (await conn.execute(select(BackgroundJob.id).where(where).limit(1))).first() is None:
            return []
        # The write lock first: a deferred BEGIN would let two claimers read the same rows and
        # then fail to upgrade (SQLITE_BUSY at once, without waiting out the busy timeout).
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            found = (
                await conn.execute(
                    select(BackgroundJob.id, BackgroundJob.status)
                    .where(where)
                    .order_by(BackgroundJob.run_after, BackgroundJob.id)
                    .limit(limit)
                )
            ).all()
            rows: Sequence[Any] = []
            if found:
                taken_over = BackgroundJob.status == "running"
                rows = (
                    await conn.execute(
                        update(BackgroundJob)
                        .where(BackgroundJob.id.in_([row.id for row in found]))
                        .values(_claim_values("sqlite", owner, lease_seconds, taken_over))
                        .returning(*_RETURNED)
                    )
                ).all()
            await conn.exec_driver_sql("COMMIT")
        except BaseException:
            try:
                await conn.exec_driver_sql("ROLLBACK")
            except BaseException:
                # Closed rather than returned to the pool still holding the write lock.
                await conn.invalidate()
            raise
    previous = {row.id: row.status for row in found}
    return sorted(
        (_claimed(row, taken_over=previous[row.id] == "running") for row in rows),
        key=lambda job: job.id,
    )


def _claimed(row: Any, *, taken_over: bool | None = None) -> ClaimedJob:
    return ClaimedJob(
        id=row.id,
        task_type=row.task_type,
        payload=row.payload,
        trigger=row.trigger,
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        failure_id=row.failure_id,
        taken_over=bool(row.taken_over if taken_over is None else taken_over),
    )


def _fence(job_id: int, attempt: int, owner: str | None = None) -> list[ColumnElement[bool]]:
    conditions = [
        BackgroundJob.id == job_id,
        BackgroundJob.status == "running",
        BackgroundJob.attempts == attempt,
    ]
    if owner is not None:
        conditions.append(BackgroundJob.lease_owner == owner)
    return conditions


async def renew(
    engine: AsyncEngine, *, owner: str, jobs: Collection[tuple[int, int]], lease_seconds: float
) -> set[int]:
    """Extend the leases `owner` holds on `jobs` ((id, attempt) pairs); returns the ids it
    still holds. A job missing from the answer was taken over: its worker must stop it."""
    if not jobs:
        return set()
    dialect = engine.dialect.name
    fences = [and_(*_fence(job_id, attempt, owner)) for job_id, attempt in jobs]
    statement = (
        update(BackgroundJob)
        .where(or_(*fences))
        .values(lease_expires_at=db_now(dialect, lease_seconds), updated_at=db_now(dialect))
        .returning(BackgroundJob.id)
    )
    async with engine.begin() as conn:
        return {int(row.id) for row in await conn.execute(statement)}


async def hold(session: AsyncSession, *, job_id: int, attempt: int) -> bool:
    """Begin a finish: a fenced write to the job in the caller's transaction; False when
    attempt `attempt` no longer holds it (then the caller's work is not the job's result).

    Written first on purpose: a run that lost its lease writes nothing else, and on
    PostgreSQL the job's row stays locked until the finish commits. (It also opens SQLite's
    transaction, which its driver begins only at a first write.)
    """
    result = await session.execute(
        update(BackgroundJob)
        .where(*_fence(job_id, attempt))
        .values(updated_at=db_now(_dialect(session)))
        .returning(BackgroundJob.id)
    )
    return result.first() is not None


async def finish(
    session: AsyncSession,
    *,
    job_id: int,
    attempt: int,
    status: Literal["done", "failed"],
    failure_id: int | None = None,
    error_type: str | None = None,
    error: str | None = None,
) -> bool:
    """End attempt `attempt` of a job in the caller's transaction; False when the fence
    fails (the job was taken over or finished by someone else: the caller's work is not
    the job's result)."""
    dialect = _dialect(session)
    now = db_now(dialect)
    values: dict[str, Any] = {
        "status": status,
        "lease_owner": None,
        "lease_expires_at": None,
        "finished_at": now,
        "updated_at": now,
        "last_error_type": error_type,
        "last_error": error,
    }
    if failure_id is not None:
        values["failure_id"] = failure_id
    result = await session.execute(
        update(BackgroundJob)
        .where(*_fence(job_id, attempt))
        .values(values)
        .returning(BackgroundJob.id)
    )
    return result.first() is not None


async def hand_back(
    engine: AsyncEngine,
    *,
    owner: str,
    job_id: int,
    attempt: int,
    delay_seconds: float = 0.0,
    reason: str | None = None,
) -> bool:
    """Return a job to the queue unfinished, without spending an attempt (a deploy, or a
    breaker that is open, costs the job nothing). False when `owner` no longer holds it."""
    dialect = engine.dialect.name
    statement = (
        update(BackgroundJob)
        .where(*_fence(job_id, attempt, owner))
        .values(
            status="queued",
            attempts=BackgroundJob.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            run_after=db_now(dialect, delay_seconds),
            updated_at=db_now(dialect),
            last_error_type=reason,
        )
        .returning(BackgroundJob.id)
    )
    async with engine.begin() as conn:
        return (await conn.execute(statement)).first() is not None


async def delete_finished(engine: AsyncEngine, *, older_than_days: float, limit: int = 1000) -> int:
    """Delete up to `limit` jobs finished more than `older_than_days` ago: `done` ones, and
    `failed` ones whose failure row is resolved or gone (an unresolved failure keeps its job,
    which holds what a retry needs). Returns how many went; runs keep their rows."""
    dialect = engine.dialect.name
    cutoff = db_now(dialect, -older_than_days * 86400)
    unresolved = (
        select(BackgroundTaskFailure.id)
        .where(BackgroundTaskFailure.id == BackgroundJob.failure_id)
        .where(BackgroundTaskFailure.resolved.is_not(True))
        .exists()
    )
    old = (
        select(BackgroundJob.id)
        .where(BackgroundJob.finished_at < cutoff)
        .where(
            or_(
                BackgroundJob.status == "done",
                and_(BackgroundJob.status == "failed", ~unresolved),
            )
        )
        .order_by(BackgroundJob.id)
        .limit(limit)
    )
    async with engine.begin() as conn:
        ids = [row.id for row in await conn.execute(old)]
        if ids:
            await conn.execute(delete(BackgroundJob).where(BackgroundJob.id.in_(ids)))
    return len(ids)


@dataclass(frozen=True, slots=True)
class JobCounts:
    """How many jobs there are by (task type, status), and how old the oldest due one is."""

    counts: dict[tuple[str, str], int]
    #: Seconds since the oldest job that is queued and due became due (None: none is).
    oldest_due_seconds: dict[str, float]


async def count_jobs(session: AsyncSession) -> JobCounts:
    """Counts by task type and status, and the oldest due queued job's age per task type."""
    dialect = _dialect(session)
    rows = (
        await session.execute(
            select(BackgroundJob.task_type, BackgroundJob.status, func.count()).group_by(
                BackgroundJob.task_type, BackgroundJob.status
            )
        )
    ).all()
    now = db_now(dialect)
    oldest = (
        await session.execute(
            # Typed as the column: both come back as aware UTC datetimes on either backend.
            select(
                BackgroundJob.task_type,
                type_coerce(func.min(BackgroundJob.run_after), UTCDateTime),
                type_coerce(now, UTCDateTime),
            )
            .where(BackgroundJob.status == "queued", BackgroundJob.run_after <= now)
            .group_by(BackgroundJob.task_type)
        )
    ).all()
    ages = {
        task_type: max(0.0, (current - run_after).total_seconds())
        for task_type, run_after, current in oldest
    }
    return JobCounts({(t, s): int(n) for t, s, n in rows}, ages)


async def list_jobs(
    session: AsyncSession,
    *,
    limit: int,
    status: str | None = None,
    task_type: str | None = None,
    before: tuple[datetime, int] | None = None,
) -> list[BackgroundJob]:
    """Jobs newest first (`created_at`, then `id`), optionally only those strictly older than
    `before` (a page's last `(created_at, id)`: keyset paging on `ix_background_jobs_created`)."""
    query = select(BackgroundJob)
    if status is not None:
        query = query.where(BackgroundJob.status == status)
    if task_type is not None:
        query = query.where(BackgroundJob.task_type == task_type)
    if before is not None:
        when = _as_stored(_dialect(session), before[0])
        query = query.where(
            or_(
                BackgroundJob.created_at < when,
                and_(BackgroundJob.created_at == when, BackgroundJob.id < before[1]),
            )
        )
    query = query.order_by(BackgroundJob.created_at.desc(), BackgroundJob.id.desc()).limit(limit)
    return list(await session.scalars(query))


def _as_stored(dialect: str, when: datetime) -> Any:
    """`when` as the database compares it with a job's timestamps.

    On SQLite those are text in `db_now`'s millisecond format, while a bound datetime would be
    text with six digits: `...00.123` sorts before `...00.123000`, and a page would repeat its
    last row. So SQLite gets the same millisecond text.
    """
    if dialect != "sqlite":
        return when
    text_value = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return literal(text_value, String)
