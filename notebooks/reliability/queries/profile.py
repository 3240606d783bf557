"""The one scan behind the counts and the checks: the window grouped by (`error_type`,
`retry_count`), with the quality checks counted and the first malformed row; `check` (is every
row a failure or run row?) and `quality` (which rows are valid but odd?)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, or_, select

from notebooks.reliability.db import FAILURES_TABLE, RUNS_TABLE
from notebooks.reliability.errors import MalformedRowError
from notebooks.reliability.frames import OUTCOMES
from notebooks.reliability.queries.reader import Reader, stamp_or_none
from notebooks.reliability.sql import FAILURES, RUNS, count_if


class Profile(Reader):
    """The scan (made once, cached), what it says about the rows' validity and oddities."""

    def _profile(self) -> pd.DataFrame:
        """One scan of the window, grouped by (`error_type`, `retry_count`): the counts behind
        `overview`, `error_types`, `retry_counts` and `quality`, and the first malformed row.
        """
        return self._memo("profile", self._read_profile)

    def _read_profile(self) -> pd.DataFrame:
        f, d, checks = FAILURES.c, self.dialect, self._checks()
        query = (
            select(
                f.error_type,
                f.retry_count,
                func.count(),
                count_if(d.unresolved()),
                func.min(f.created_at),
                func.max(f.created_at),
                func.min(case((self._malformed(), f.id))),
                *(count_if(condition) for _, condition, _ in checks),
            )
            .where(*self._within(f.created_at))
            .group_by(f.error_type, f.retry_count)
        )
        columns = ["error_type", "retry_count", "failures", "unresolved", "first", "last"]
        names = ["malformed_id", *(name for name, _, _ in checks)]
        return pd.DataFrame(self._rows(query), columns=[*columns, *names])

    def _malformed(self) -> ColumnElement[bool]:
        """A failure row that is not one: SQLite stores any value in any column."""
        f = FAILURES.c
        both = [func.trim(f.task_type) == "", f.created_at.is_(None)]
        if self.dialect.name == "postgresql":
            return or_(*both, f.retry_count < 0)
        return or_(
            f.task_type.is_(None),
            *both,
            func.julianday(f.created_at).is_(None),
            and_(f.resolved_at.is_not(None), func.julianday(f.resolved_at).is_(None)),
            and_(f.resolved.is_not(None), f.resolved.not_in([0, 1])),
            and_(
                f.retry_count.is_not(None),
                or_(func.typeof(f.retry_count) != "integer", f.retry_count < 0),
            ),
        )

    def _checks(self) -> list[tuple[str, ColumnElement[bool], str]]:
        f, d = FAILURES.c, self.dialect
        return [
            (
                "created in the future",
                d.time(f.created_at) > d.time(self.now),
                "created_at is later than now: a clock or time-zone problem at the writer",
            ),
            (
                "resolved before created",
                and_(f.resolved_at.is_not(None), d.time(f.resolved_at) < d.time(f.created_at)),
                "resolved_at < created_at: left out of the time to resolution",
            ),
            (
                "resolved without resolved_at",
                and_(d.resolved(), f.resolved_at.is_(None)),
                "marked resolved but with no time: left out of the time to resolution",
            ),
            (
                "resolved_at without resolved",
                and_(d.unresolved(), f.resolved_at.is_not(None)),
                "has a resolution time but is not marked resolved: counted as unresolved",
            ),
            (
                "resolved is NULL",
                f.resolved.is_(None),
                "counted as unresolved (as the service does)",
            ),
            ("no error_type", f.error_type.is_(None), "shown as (none)"),
            ("game deleted", f.game_id.is_(None), "the game was deleted (or never known)"),
        ]

    def check(self) -> None:
        """Raise `MalformedRowError` naming the first row that is not a failure (or run) row.

        SQLite stores any value in any column, so text that is not a time, a `resolved` that
        is not 0/1 or a `retry_count` that is not a whole number is possible there; on both
        databases an empty `task_type`, a NULL `created_at` and a negative `retry_count` are
        malformed, and so is a run whose `outcome` is not success, failure or superseded.
        """
        bad = self._profile()["malformed_id"].dropna()
        if not bad.empty:
            row_id = int(bad.min())
            f = FAILURES.c
            columns = (f.task_type, f.created_at, f.resolved_at, f.resolved, f.retry_count)
            problem = _problem(self._rows(select(*columns).where(f.id == row_id))[0])
            raise MalformedRowError(f"{self.source}: {FAILURES_TABLE}", f"id={row_id}", problem)
        if self.has_runs:
            r = RUNS.c
            bad_time = [r.started_at.is_(None)]
            if self.dialect.name == "sqlite":
                bad_time.append(func.julianday(r.started_at).is_(None))
            runs = self._rows(
                select(r.id, r.outcome, r.started_at)
                .where(or_(r.outcome.is_(None), r.outcome.not_in(sorted(OUTCOMES)), *bad_time))
                .order_by(r.id)
                .limit(1)
            )
            if runs:
                row_id, outcome, started_at = runs[0]
                if outcome not in OUTCOMES:
                    problem = f"outcome {outcome!r} is not success, failure or superseded"
                else:
                    problem = f"started_at {started_at!r} is not a timestamp"
                raise MalformedRowError(f"{self.source}: {RUNS_TABLE}", f"id={row_id}", problem)

    def quality(self) -> pd.DataFrame:
        """Rows that are valid but odd, with what each check means: `check`, `rows`, `meaning`.

        Rows from the future, resolved before created, resolved without a time (or a time
        without the flag), `resolved` NULL, no `error_type`, the game deleted.
        """
        profile, checks = self._profile(), self._checks()
        return pd.DataFrame(
            {
                "check": [name for name, _, _ in checks],
                "rows": [int(profile[name].fillna(0).sum()) for name, _, _ in checks],
                "meaning": [meaning for _, _, meaning in checks],
            }
        )


def _problem(row: tuple[Any, ...]) -> str:
    """What is wrong with a malformed failure row (`task_type` ... `retry_count`)."""
    task_type, created_at, resolved_at, resolved, retry_count = row
    if task_type is None or not str(task_type).strip():
        return "task_type is empty"
    if created_at is None:
        return "created_at is NULL"
    if stamp_or_none(created_at) is None:
        return f"created_at {created_at!r} is not a timestamp"
    if resolved_at is not None and stamp_or_none(resolved_at) is None:
        return f"resolved_at {resolved_at!r} is not a timestamp"
    if resolved is not None and resolved not in (0, 1, True, False):
        return f"resolved {resolved!r} is not true or false"
    return f"retry_count {retry_count!r} is not a whole number >= 0"
