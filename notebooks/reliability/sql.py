"""The tables the analysis reads, and what differs between SQLite and PostgreSQL, as SQLAlchemy
Core expressions.

PostgreSQL keeps its timestamps as `TIMESTAMP` and its indexes usable (filters compare the columns
themselves); SQLite stores text, so times go through `julianday()`, which reads
`2026-11-30 04:10:22.5`, `2026-11-30T04:10:22Z` and `...+02:00` alike. The columns are untyped:
values come back as the driver reads them (SQLite's text times too) and the callers type them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import ColumnElement, FromClause, TableClause, func

from notebooks.reliability.db import FAILURES_TABLE, GAMES_TABLE, RUNS_TABLE
from notebooks.reliability.errors import InputError
from notebooks.reliability.frames import FAILURE_COLUMNS, RUN_COLUMNS
from notebooks.reliability.timeutil import naive_utc

DialectName = Literal["sqlite", "postgresql"]
#: A time column, or an aware instant to bind.
Time = ColumnElement[Any] | datetime

FAILURES = sa.table(FAILURES_TABLE, *(sa.column(name) for name in FAILURE_COLUMNS))
RUNS = sa.table(RUNS_TABLE, *(sa.column(name) for name in RUN_COLUMNS))
GAMES = sa.table(GAMES_TABLE, sa.column("id"), sa.column("title"), sa.column("bgg_id"))

#: Edges (seconds) of the duration bins used for ages and times to resolution.
DURATION_EDGES: tuple[int, ...] = (10, 60, 300, 900, 3600, 21600, 86400, 604800, 2592000)
DURATION_LABELS: tuple[str, ...] = (
    "< 10 s",
    "10 s-1 min",
    "1-5 min",
    "5-15 min",
    "15 min-1 h",
    "1-6 h",
    "6-24 h",
    "1-7 d",
    "7-30 d",
    ">= 30 d",
)


def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """How many rows of a group meet `condition`."""
    return func.sum(sa.case((condition, 1), else_=0))


@dataclass(frozen=True)
class Dialect:
    """The expressions that differ by database (`SQLITE` or `POSTGRESQL`)."""

    name: DialectName

    def param_time(self, value: datetime) -> Any:
        """A bound value compared with a timestamp column (aware UTC in)."""
        naive = naive_utc(value)
        return naive if self.name == "postgresql" else naive.isoformat(sep=" ")

    def _bound(self, value: Time) -> ColumnElement[Any]:
        return sa.literal(self.param_time(value)) if isinstance(value, datetime) else value

    def time(self, value: Time) -> ColumnElement[Any]:
        """A time that compares as one: the column itself on PostgreSQL, `julianday()` on SQLite."""
        bound = self._bound(value)
        return bound if self.name == "postgresql" else func.julianday(bound)

    def bucket(self, time: ColumnElement[Any], seconds: int) -> ColumnElement[Any]:
        """A grouping key for `time` in buckets of `seconds` (whole seconds, from the epoch).

        SQLite: integer epoch seconds from `strftime('%s')` and integer division, so a time on
        a bucket's edge is in that bucket (`julianday()` arithmetic in floating point would
        put 12:00:00 at 11:59:59.99999). `InputError` below one second.
        """
        if seconds < 1:
            raise InputError(f"bucket must be at least 1 second, got {seconds}")
        if self.name == "postgresql":
            epoch = sa.literal(datetime(1970, 1, 1))
            return func.date_bin(sa.literal(timedelta(seconds=seconds)), time, epoch)
        return sa.cast(func.strftime("%s", time), sa.Integer) // seconds * seconds

    def epoch(self, key: ColumnElement[Any]) -> ColumnElement[float]:
        """The epoch seconds of a `bucket` key (applied after grouping)."""
        if self.name == "postgresql":
            return sa.cast(sa.extract("epoch", key), sa.Double)
        return sa.cast(key, sa.Double)

    def seconds_between(self, start: Time, end: Time) -> ColumnElement[Any]:
        """`end - start` in seconds, as a float."""
        if self.name == "postgresql":
            return sa.cast(sa.extract("epoch", self.interval(start, end)), sa.Double)
        # SQLite's date functions work in milliseconds: round the float noise away.
        return func.round((self.time(end) - self.time(start)) * 86400.0, 3)

    def interval(self, start: Time, end: Time) -> ColumnElement[Any]:
        """`end - start` as PostgreSQL's `INTERVAL`."""
        return self._bound(end) - self._bound(start)

    def shorter_than(self, start: Time, end: Time, seconds: int) -> ColumnElement[bool]:
        """`end - start < seconds` (PostgreSQL compares intervals, which keeps it cheap)."""
        if self.name == "postgresql":
            return self.interval(start, end) < sa.literal(timedelta(seconds=seconds))
        return self.seconds_between(start, end) < seconds

    def unresolved(self, rows: FromClause = FAILURES) -> ColumnElement[bool]:
        """A failure that is not resolved (NULL `resolved` counts as unresolved)."""
        if self.name == "postgresql":
            # Two index range scans on idx_task_failure_resolved (resolved, created_at).
            return sa.or_(rows.c.resolved == sa.false(), rows.c.resolved.is_(None))
        return func.coalesce(rows.c.resolved, 0) == 0

    def resolved(self, rows: FromClause = FAILURES) -> ColumnElement[bool]:
        """A resolved failure."""
        return rows.c.resolved.is_(sa.true()) if self.name == "postgresql" else rows.c.resolved == 1

    def sample(self, percent: float, rows: TableClause = FAILURES) -> FromClause:
        """About `percent` % of `rows`, as `sampled` (PostgreSQL: repeatable)."""
        if self.name == "postgresql":
            # Whole pages at random: reads only the sampled share of the table.
            share = func.system(sa.cast(round(percent, 6), sa.REAL))
            return rows.tablesample(share, name="sampled", seed=sa.literal(7))
        keep = max(1, round(100 / percent))
        return sa.select(rows).where(func.abs(func.random()) % keep == 0).subquery("sampled")


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


def dialect_for(name: str) -> Dialect:
    """The `Dialect` of an engine's `dialect.name`."""
    if name == "postgresql":
        return POSTGRESQL
    if name == "sqlite":
        return SQLITE
    raise ValueError(f"unsupported database dialect {name!r}")
