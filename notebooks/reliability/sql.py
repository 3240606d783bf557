"""The SQL that differs between SQLite and PostgreSQL, in one place.

Each dialect gives the same few fragments: a time filter, the start of a time bucket as epoch
seconds, a duration compared with a threshold, "unresolved", and a row sample. PostgreSQL
keeps its timestamps as `TIMESTAMP` and its indexes usable (filters compare the columns
themselves); SQLite stores text, so times go through `julianday()`, which reads
`2026-11-30 04:10:22.5`, `2026-11-30T04:10:22Z` and `...+02:00` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from notebooks.reliability.timeutil import naive_utc

DialectName = Literal["sqlite", "postgresql"]

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


@dataclass(frozen=True)
class Dialect:
    """SQL fragments for one database (`SQLITE` or `POSTGRESQL`)."""

    name: DialectName

    def param_time(self, value: datetime) -> Any:
        """A bound value compared with a timestamp column (aware UTC in)."""
        naive = naive_utc(value)
        return naive if self.name == "postgresql" else naive.isoformat(sep=" ")

    def time_at_least(self, column: str, param: str) -> str:
        """`column >= :param`."""
        if self.name == "postgresql":
            return f"{column} >= :{param}"
        return f"julianday({column}) >= julianday(:{param})"

    def time_before(self, column: str, param: str) -> str:
        """`column < :param`."""
        if self.name == "postgresql":
            return f"{column} < :{param}"
        return f"julianday({column}) < julianday(:{param})"

    def time_after(self, column: str, param: str) -> str:
        """`column > :param`."""
        if self.name == "postgresql":
            return f"{column} > :{param}"
        return f"julianday({column}) > julianday(:{param})"

    def column_before(self, first: str, second: str) -> str:
        """`first < second` for two timestamp columns."""
        if self.name == "postgresql":
            return f"{first} < {second}"
        return f"julianday({first}) < julianday({second})"

    def bucket_key(self, column: str) -> str:
        """A grouping key for `column` in buckets of `:bucket` (whole) seconds.

        SQLite: integer epoch seconds from `strftime('%s')` and integer division, so a time on
        a bucket's edge is in that bucket (`julianday()` arithmetic in floating point would
        put 12:00:00 at 11:59:59.99999).
        """
        if self.name == "postgresql":
            return f"date_bin(make_interval(secs => :bucket), {column}, TIMESTAMP '1970-01-01')"
        return f"(CAST(strftime('%s', {column}) AS INTEGER) / :bucket * :bucket)"

    def bucket_epoch(self, key: str) -> str:
        """The epoch seconds of a bucket key (applied after grouping)."""
        if self.name == "postgresql":
            return f"CAST(EXTRACT(EPOCH FROM {key}) AS DOUBLE PRECISION)"
        return f"CAST({key} AS REAL)"

    def seconds_between(self, start: str, end: str) -> str:
        """`end - start` in seconds, as a float."""
        if self.name == "postgresql":
            return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"
        # SQLite's date functions work in milliseconds: round the float noise away.
        return f"round((julianday({end}) - julianday({start})) * 86400.0, 3)"

    def shorter_than(self, start: str, end: str, seconds: int) -> str:
        """`end - start < seconds` (PostgreSQL compares intervals, which keeps it cheap)."""
        if self.name == "postgresql":
            return f"({end} - {start}) < INTERVAL '{int(seconds)} seconds'"
        return f"{self.seconds_between(start, end)} < {int(seconds)}"

    def unresolved(self, alias: str = "") -> str:
        """A failure that is not resolved (NULL `resolved` counts as unresolved)."""
        prefix = f"{alias}." if alias else ""
        if self.name == "postgresql":
            # Two index range scans on idx_task_failure_resolved (resolved, created_at).
            return f"({prefix}resolved = FALSE OR {prefix}resolved IS NULL)"
        return f"COALESCE({prefix}resolved, 0) = 0"

    def resolved(self) -> str:
        """A resolved failure."""
        return "resolved IS TRUE" if self.name == "postgresql" else "resolved = 1"

    def sample(self, table: str, percent: float) -> str:
        """`FROM` text reading about `percent` % of `table`'s rows (PostgreSQL: repeatable)."""
        if self.name == "postgresql":
            # Whole pages at random: reads only the sampled share of the table.
            return f"{table} TABLESAMPLE SYSTEM ({percent:.6f}) REPEATABLE (7)"
        keep = max(1, round(100 / percent))
        return f"(SELECT * FROM {table} WHERE abs(random()) % {keep} = 0) AS sampled"  # noqa: S608


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


def dialect_for(name: str) -> Dialect:
    """The `Dialect` of an engine's `dialect.name`."""
    if name == "postgresql":
        return POSTGRESQL
    if name == "sqlite":
        return SQLITE
    raise ValueError(f"unsupported database dialect {name!r}")
