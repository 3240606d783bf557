"""Queries on `background_task_failures` and `background_task_runs` (their SQL lives here).

Listing is newest first by `(created_at, id)` with keyset paging, so every page is an index
range scan on the spec's indexes whatever the table's size: `(resolved, created_at)` when
filtering on `resolved`, `(task_type, created_at)` when filtering on the type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, false, func, or_, select, true, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from system.db.models import BackgroundTaskFailure, BackgroundTaskFailureCount, BackgroundTaskRun


@dataclass(frozen=True, slots=True)
class FailureFilter:
    """Which failures a listing shows."""

    resolved: bool | None = None
    task_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Keyset cursor: only failures strictly older than this `(created_at, id)`.
    before: tuple[datetime, int] | None = None


@dataclass(frozen=True, slots=True)
class FailureSummary:
    """The counts the monitoring endpoint reports."""

    total: int
    unresolved: int
    unresolved_by_type: dict[str, int]


def _unresolved() -> ColumnElement[bool]:
    # NULL counts as unresolved: the column is nullable in the spec's DDL.
    return or_(BackgroundTaskFailure.resolved.is_(None), BackgroundTaskFailure.resolved == false())


class FailureRepository:
    """Reads and updates of failure rows through one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, failure_id: int) -> BackgroundTaskFailure | None:
        """One failure, or None."""
        return await self.session.get(BackgroundTaskFailure, failure_id)

    async def summary(self) -> FailureSummary:
        """Total and unresolved counts over the whole table, unresolved by type.

        Read from the trigger-kept counts (migration 0004): constant time at any size.
        """
        rows = await self.session.execute(
            select(
                BackgroundTaskFailureCount.task_type,
                BackgroundTaskFailureCount.resolved,
                BackgroundTaskFailureCount.failures,
            )
        )
        total = 0
        by_type: dict[str, int] = {}
        for task_type, resolved, failures in rows.all():
            total += failures
            if not resolved and failures:
                by_type[task_type] = by_type.get(task_type, 0) + failures
        return FailureSummary(total, sum(by_type.values()), by_type)

    def _filtered(self, where: FailureFilter) -> Select[BackgroundTaskFailure]:
        """Every condition of `where` but `resolved` (see `_resolved_branches`)."""
        query = select(BackgroundTaskFailure)
        if where.task_type is not None:
            query = query.where(BackgroundTaskFailure.task_type == where.task_type)
        if where.since is not None:
            query = query.where(BackgroundTaskFailure.created_at >= where.since)
        if where.until is not None:
            query = query.where(BackgroundTaskFailure.created_at < where.until)
        if where.before is not None:
            created, failure_id = where.before
            # The `<=` on created_at alone is what lets the index bound the range scan.
            query = query.where(
                BackgroundTaskFailure.created_at <= created,
                or_(
                    BackgroundTaskFailure.created_at < created,
                    BackgroundTaskFailure.id < failure_id,
                ),
            )
        return query

    @staticmethod
    def _resolved_branches(resolved: bool | None) -> list[ColumnElement[bool]]:
        column = BackgroundTaskFailure.resolved
        if resolved is True:
            return [column == true()]
        unresolved = [column == false(), column.is_(None)]
        return unresolved if resolved is False else [column == true(), *unresolved]

    async def list(self, where: FailureFilter, *, limit: int) -> Sequence[BackgroundTaskFailure]:
        """Up to `limit` failures matching `where`, newest first.

        No index leads with `created_at`, but `(resolved, created_at)` does for each value of
        `resolved`: so each value's newest `limit` rows are read by an index range scan and
        merged, instead of sorting the whole table.
        """
        newest_first = (BackgroundTaskFailure.created_at.desc(), BackgroundTaskFailure.id.desc())
        base = self._filtered(where)
        branches = [
            base.where(condition).order_by(*newest_first).limit(limit).subquery()
            for condition in self._resolved_branches(where.resolved)
        ]
        # One round trip: the branches' newest rows, merged and cut to `limit`.
        merged = union_all(*(select(branch) for branch in branches)).subquery()
        failure = aliased(BackgroundTaskFailure, merged)
        query = select(failure).order_by(failure.created_at.desc(), failure.id.desc()).limit(limit)
        return (await self.session.scalars(query)).all()

    async def resolve(self, failure_id: int, at: datetime) -> bool:
        """Mark resolved; False when it already was (its first `resolved_at` is kept)."""
        result = await self.session.execute(
            update(BackgroundTaskFailure)
            .where(BackgroundTaskFailure.id == failure_id)
            .where(_unresolved())
            .values(resolved=True, resolved_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def retry_candidates(
        self,
        *,
        task_type: str,
        error_types: frozenset[str],
        since: datetime,
        until: datetime,
        max_auto_retries: int,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> Sequence[tuple[datetime, int]]:
        """`(created_at, id)` of up to `limit` unresolved failures of `task_type` with one of
        `error_types`, recorded in `[since, until]`, that have had fewer than
        `max_auto_retries` automatic retries; oldest first, strictly after `after`.

        The retry cap is in the query, so failures that have used up their retries never
        fill a batch; the keyset `after` keeps each batch an index range scan.
        """
        failure, run = BackgroundTaskFailure, BackgroundTaskRun
        retries_used = (
            select(func.count())
            .select_from(run)
            .where(run.failure_id == failure.id, run.trigger == "auto_retry")
            .correlate(failure)
            .scalar_subquery()
        )
        query = (
            select(failure.created_at, failure.id)
            .where(failure.task_type == task_type)
            .where(_unresolved())
            .where(failure.error_type.in_(error_types))
            .where(failure.created_at >= since, failure.created_at <= until)
            .where(retries_used < max_auto_retries)
            .order_by(failure.created_at, failure.id)
            .limit(limit)
        )
        if after is not None:
            created, failure_id = after
            # The `>=` on created_at alone is what lets the index bound the range scan.
            query = query.where(
                failure.created_at >= created,
                or_(failure.created_at > created, failure.id > failure_id),
            )
        rows = (await self.session.execute(query)).all()
        return [(created, int(failure_id)) for created, failure_id in rows if created is not None]
