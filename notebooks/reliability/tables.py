"""The failure and run tables, read through SQL that aggregates in the database.

A million failure rows are ~390 MB in pandas and take seconds to read; the same hourly counts
take a fraction of a second in the database. So every figure here is one aggregate query
that returns only what a plot or a table needs (counts per bucket, per type, quantiles, bins),
and only the drill-down (`read_failures`) returns rows, a bounded number, read in chunks.

`TaskTables` wraps a synchronous SQLAlchemy engine on the service's database (SQLite or
PostgreSQL, see `notebooks.reliability.db`) or on the in-memory SQLite database a CSV export
was loaded into (`notebooks.reliability.csv_tables`): the same queries serve both.

The SQL text interpolated into queries is made only of this module's and `sql.py`'s constants
(table names, dialect fragments, numeric edges); every value is a bound parameter, hence the
`# noqa: S608` on the f-strings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from chaos.closing import Closing
from notebooks.reliability.db import (
    FAILURES_TABLE,
    GAMES_TABLE,
    RUNS_TABLE,
    has_table,
    open_engine,
)
from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.frames import FAILURE_COLUMNS, OUTCOMES, failure_frame
from notebooks.reliability.sql import DURATION_EDGES, DURATION_LABELS, Dialect, dialect_for
from notebooks.reliability.timeutil import UTC_DTYPE, as_instant

#: Quantiles returned for durations: 0, 1, ..., 100 % (a whole distribution in 101 numbers).
QUANTILES: tuple[float, ...] = tuple(i / 100 for i in range(101))
#: Above this many failure rows, message patterns are estimated from a sample.
EXACT_MESSAGE_ROWS = 200_000
#: About this many rows are sampled then.
MESSAGE_SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class Window:
    """The time window of an analysis (aware UTC; None = unbounded), `since <= t < until`."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, since: str | datetime | None, until: str | datetime | None) -> Window:
        """From notebook parameters (ISO-8601 text, naive = UTC); `InputError` when inverted."""
        start = as_instant(since, name="since")
        end = as_instant(until, name="until")
        if start is not None and end is not None and start >= end:
            raise InputError(
                f"since ({start.isoformat()}) must be before until ({end.isoformat()})"
            )
        return cls(start, end)


@dataclass(frozen=True)
class Overview:
    """Counts over the window: rows, unresolved, resolved, first and last `created_at`."""

    failures: int
    unresolved: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    runs: int | None = None
    runs_first: pd.Timestamp | None = None
    runs_last: pd.Timestamp | None = None
    source: str = ""

    @property
    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The first and last time of any failure or run."""
        firsts = [t for t in (self.first, self.runs_first) if t is not None]
        lasts = [t for t in (self.last, self.runs_last) if t is not None]
        return (min(firsts) if firsts else None, max(lasts) if lasts else None)

    @property
    def resolved(self) -> int:
        """Failures marked resolved."""
        return self.failures - self.unresolved


def _stamp(value: object) -> pd.Timestamp | None:
    """A value from a MIN/MAX query (naive UTC datetime or SQLite text) as aware UTC."""
    if value is None:
        return None
    text = str(value).replace(" ", "T", 1) if isinstance(value, str) else None
    stamp: object = pd.Timestamp(text if text is not None else value)  # type: ignore[arg-type]
    if not isinstance(stamp, pd.Timestamp):  # NaT
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _epochs(values: pd.Series) -> pd.Series:
    """Epoch seconds as aware UTC timestamps."""
    return pd.to_datetime(values.astype("float64"), unit="s", utc=True).astype(UTC_DTYPE)


class TaskTables(Closing):
    """Aggregates over `background_task_failures` and `background_task_runs` in one window.

    `now` is the reference for ages (default: the time of opening); rows created after it
    are "from the future": counted by `quality()`, left out of ages.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        window: Window | None = None,
        now: datetime | None = None,
        source: str = "database",
        owns_engine: bool = True,
    ) -> None:
        self.engine = engine
        self.window = window or Window()
        self.now = now or datetime.now(UTC)
        self.source = source
        self.dialect: Dialect = dialect_for(engine.dialect.name)
        self.has_runs = has_table(engine, RUNS_TABLE)
        self.has_games = has_table(engine, GAMES_TABLE)
        self._owns_engine = owns_engine
        self._lock = threading.Lock()
        self._profile_cache: pd.DataFrame | None = None
        self._distributions: dict[str, tuple[pd.Series, pd.DataFrame]] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connections (and the engine, when this object made it)."""
        if self._owns_engine:
            self.engine.dispose()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.dialect.name == "postgresql":
                # Read only, and enough memory for the quantile sorts to stay off disk.
                conn.execute(text("SET TRANSACTION READ ONLY"))
                conn.execute(text("SET LOCAL work_mem = '64MB'"))
            try:
                yield conn
            finally:
                conn.rollback()

    def _rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def _where(self, column: str, *extra: str) -> tuple[str, dict[str, Any]]:
        """`WHERE` over the window on `column` (plus `extra` conditions) and its parameters."""
        conditions = list(extra)
        params: dict[str, Any] = {}
        if self.window.since is not None:
            conditions.append(self.dialect.time_at_least(column, "since"))
            params["since"] = self.dialect.param_time(self.window.since)
        if self.window.until is not None:
            conditions.append(self.dialect.time_before(column, "until"))
            params["until"] = self.dialect.param_time(self.window.until)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return where, params

    def _now(self) -> Any:
        return self.dialect.param_time(self.now)

    # -- one scan: counts, quality and validation --------------------------------------------

    def _profile(self) -> pd.DataFrame:
        """One scan of the window, grouped by (`error_type`, `retry_count`): the counts behind
        `overview`, `error_types`, `retry_counts` and `quality`, and the first malformed row.
        """
        with self._lock:
            if self._profile_cache is None:
                self._profile_cache = self._read_profile()
            return self._profile_cache

    def _read_profile(self) -> pd.DataFrame:
        d = self.dialect
        where, params = self._where("created_at")
        sums = ", ".join(
            f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)" for _, cond, _ in self._checks()
        )
        rows = self._rows(
            f"""SELECT error_type, retry_count, COUNT(*),
                       SUM(CASE WHEN {d.unresolved()} THEN 1 ELSE 0 END),
                       MIN(created_at), MAX(created_at),
                       MIN(CASE WHEN {self._malformed()} THEN id END), {sums}
                  FROM {FAILURES_TABLE} {where}
                 GROUP BY error_type, retry_count""",  # noqa: S608
            {**params, "now": self._now()},
        )
        names = [name for name, _, _ in self._checks()]
        columns = [
            "error_type",
            "retry_count",
            "failures",
            "unresolved",
            "first",
            "last",
            "malformed_id",
            *names,
        ]
        return pd.DataFrame(rows, columns=columns)

    def _malformed(self) -> str:
        """A failure row that is not one: SQLite stores any value in any column."""
        if self.dialect.name == "sqlite":
            return (
                "task_type IS NULL OR trim(task_type) = '' OR created_at IS NULL"
                " OR julianday(created_at) IS NULL"
                " OR (resolved_at IS NOT NULL AND julianday(resolved_at) IS NULL)"
                " OR (resolved IS NOT NULL AND resolved NOT IN (0, 1))"
                " OR (retry_count IS NOT NULL"
                " AND (typeof(retry_count) <> 'integer' OR retry_count < 0))"
            )
        return "trim(task_type) = '' OR created_at IS NULL OR retry_count < 0"

    def _checks(self) -> list[tuple[str, str, str]]:
        d = self.dialect
        return [
            (
                "created in the future",
                d.time_after("created_at", "now"),
                "created_at is later than now: a clock or time-zone problem at the writer",
            ),
            (
                "resolved before created",
                f"resolved_at IS NOT NULL AND {d.column_before('resolved_at', 'created_at')}",
                "resolved_at < created_at: left out of the time to resolution",
            ),
            (
                "resolved without resolved_at",
                f"{d.resolved()} AND resolved_at IS NULL",
                "marked resolved but with no time: left out of the time to resolution",
            ),
            (
                "resolved_at without resolved",
                f"{d.unresolved()} AND resolved_at IS NOT NULL",
                "has a resolution time but is not marked resolved: counted as unresolved",
            ),
            ("resolved is NULL", "resolved IS NULL", "counted as unresolved (as the service does)"),
            ("no error_type", "error_type IS NULL", "shown as (none)"),
            ("game deleted", "game_id IS NULL", "the game was deleted (or never known)"),
        ]

    def check(self) -> None:
        """Raise `MalformedRowError` naming the first row that is not a failure (or run) row.

        SQLite stores any value in any column, so text that is not a time, a `resolved` that
        is not 0/1 or a `retry_count` that is not a whole number is possible there; on both
        databases an empty `task_type`, a NULL `created_at` and a negative `retry_count` are
        malformed, and so is a run whose `outcome` is not success, failure or superseded.
        """
        profile = self._profile()
        bad = profile["malformed_id"].dropna()
        if not bad.empty:
            row_id = int(bad.min())
            ((task_type, created_at, resolved_at, resolved, retry_count),) = self._rows(
                f"""SELECT task_type, created_at, resolved_at, resolved, retry_count
                      FROM {FAILURES_TABLE} WHERE id = :id""",  # noqa: S608
                {"id": row_id},
            )
            if task_type is None or not str(task_type).strip():
                problem = "task_type is empty"
            elif created_at is None:
                problem = "created_at is NULL"
            elif _stamp_or_none(created_at) is None:
                problem = f"created_at {created_at!r} is not a timestamp"
            elif resolved_at is not None and _stamp_or_none(resolved_at) is None:
                problem = f"resolved_at {resolved_at!r} is not a timestamp"
            elif resolved is not None and resolved not in (0, 1, True, False):
                problem = f"resolved {resolved!r} is not true or false"
            else:
                problem = f"retry_count {retry_count!r} is not a whole number >= 0"
            raise MalformedRowError(f"{self.source}: {FAILURES_TABLE}", f"id={row_id}", problem)
        if self.has_runs:
            bad_time = (
                "started_at IS NULL OR julianday(started_at) IS NULL"
                if self.dialect.name == "sqlite"
                else "started_at IS NULL"
            )
            runs = self._rows(
                f"""SELECT id, outcome, started_at FROM {RUNS_TABLE}
                     WHERE outcome IS NULL
                        OR outcome NOT IN ('success', 'failure', 'superseded')
                        OR {bad_time}
                     ORDER BY id LIMIT 1""",  # noqa: S608
                {},
            )
            if runs:
                row_id, outcome, started_at = runs[0]
                if outcome not in OUTCOMES:
                    problem = f"outcome {outcome!r} is not success, failure or superseded"
                else:
                    problem = f"started_at {started_at!r} is not a timestamp"
                raise MalformedRowError(f"{self.source}: {RUNS_TABLE}", f"id={row_id}", problem)

    # -- failures ---------------------------------------------------------------------------

    def overview(self) -> Overview:
        """How many failures (and runs) the window holds, and their time span."""
        profile = self._profile()
        firsts = [s for s in (_stamp_or_none(v) for v in profile["first"]) if s is not None]
        lasts = [s for s in (_stamp_or_none(v) for v in profile["last"]) if s is not None]
        runs = runs_first = runs_last = None
        if self.has_runs:
            run_where, run_params = self._where("started_at")
            ((runs, runs_first, runs_last),) = self._rows(
                f"SELECT COUNT(*), MIN(started_at), MAX(started_at) FROM {RUNS_TABLE} {run_where}",  # noqa: S608
                run_params,
            )
        return Overview(
            failures=int(profile["failures"].sum()),
            unresolved=int(profile["unresolved"].fillna(0).sum()),
            first=min(firsts) if firsts else None,
            last=max(lasts) if lasts else None,
            runs=None if runs is None else int(runs),
            runs_first=_stamp_or_none(runs_first),
            runs_last=_stamp_or_none(runs_last),
            source=self.source,
        )

    def failures_over_time(self, bucket: int) -> pd.DataFrame:
        """Failures per time bucket (`bucket` seconds) and task type.

        Columns `bucket` (aware UTC, the bucket's start), `task_type`, `failures`,
        `unresolved`; empty buckets are not listed.
        """
        where, params = self._where("created_at")
        d = self.dialect
        rows = self._rows(
            f"""SELECT {d.bucket_epoch("b")}, task_type, n, u FROM (
                    SELECT {d.bucket_key("created_at")} AS b, task_type, COUNT(*) AS n,
                           SUM(CASE WHEN {d.unresolved()} THEN 1 ELSE 0 END) AS u
                      FROM {FAILURES_TABLE} {where}
                     GROUP BY b, task_type) AS s
                 ORDER BY 1, 2""",  # noqa: S608
            {**params, "bucket": _bucket_param(d, bucket)},
        )
        frame = pd.DataFrame(rows, columns=["bucket", "task_type", "failures", "unresolved"])
        frame["bucket"] = _epochs(frame["bucket"])
        return frame.astype({"task_type": "str", "failures": "int64", "unresolved": "int64"})

    def error_types(self) -> pd.DataFrame:
        """Failures per `error_type`: `error_type` ("(none)" for NULL), `failures`,
        `unresolved`, `last_seen`, most frequent first."""
        profile = self._profile()
        frame = profile.assign(
            error_type=profile["error_type"].fillna("(none)"),
            last=pd.Series(
                [_stamp_or_none(v) for v in profile["last"]], index=profile.index, dtype=UTC_DTYPE
            ),
        )
        grouped = frame.groupby("error_type", sort=False).agg(
            failures=("failures", "sum"),
            unresolved=("unresolved", "sum"),
            last_seen=("last", "max"),
        )
        grouped = grouped.reset_index().sort_values(
            ["failures", "error_type"], ascending=[False, True], kind="stable"
        )
        grouped["last_seen"] = grouped["last_seen"].astype(UTC_DTYPE)
        return grouped.astype(
            {"error_type": "str", "failures": "int64", "unresolved": "int64"}
        ).reset_index(drop=True)

    def message_groups(self) -> tuple[pd.DataFrame, float]:
        """Failures per distinct (`error_type`, `error_message`), and the share of rows read.

        Up to `EXACT_MESSAGE_ROWS` rows every row is counted (share 1.0); above, about
        `MESSAGE_SAMPLE_ROWS` rows are sampled and the share is below 1 (see
        `messages.message_patterns`, which scales the counts back).
        """
        total = int(self._profile()["failures"].sum())
        table = FAILURES_TABLE
        fraction = 1.0
        if total > EXACT_MESSAGE_ROWS:
            percent = 100.0 * MESSAGE_SAMPLE_ROWS / total
            table = self.dialect.sample(FAILURES_TABLE, percent)
            fraction = percent / 100.0
        where, params = self._where("created_at")
        rows = self._rows(
            f"""SELECT error_type, error_message, COUNT(*) FROM {table} {where}
                 GROUP BY error_type, error_message""",  # noqa: S608
            params,
        )
        frame = pd.DataFrame(rows, columns=["error_type", "error_message", "failures"])
        return frame.astype({"failures": "int64"}), fraction

    def retry_counts(self) -> pd.DataFrame:
        """Failures per `retry_count` (attempts made): `retry_count` (Int64, NA kept),
        `failures`."""
        profile = self._profile()
        grouped = (
            profile.astype({"retry_count": "Int64"})
            .groupby("retry_count", dropna=False, sort=True)["failures"]
            .sum()
            .reset_index()
        )
        return grouped.astype({"retry_count": "Int64", "failures": "int64"})

    def top_games(self, limit: int = 10) -> pd.DataFrame:
        """The games with the most failures: `game_id` (NA: the game was deleted), `title`,
        `bgg_id`, `failures`, `unresolved`, `last_failure`.

        The ranking is counted on the index (`idx_task_failure_game`), the details read for
        those games only.
        """
        where, params = self._where("created_at")
        top = self._rows(
            f"""SELECT game_id, COUNT(*) AS n FROM {FAILURES_TABLE} {where}
                 GROUP BY game_id ORDER BY n DESC, game_id LIMIT :limit""",  # noqa: S608
            {**params, "limit": int(limit)},
        )
        columns = ["game_id", "title", "bgg_id", "failures", "unresolved", "last_failure"]
        ids = [int(g) for g, _ in top if g is not None]
        with_null = any(g is None for g, _ in top)
        details: list[tuple[Any, ...]] = []
        if top:
            d = self.dialect
            chosen = []
            if ids:
                chosen.append(f"game_id IN ({', '.join(str(i) for i in ids)})")
            if with_null:
                chosen.append("game_id IS NULL")
            detail_where, detail_params = self._where("created_at", f"({' OR '.join(chosen)})")
            inner = f"""SELECT game_id, COUNT(*) AS failures,
                               SUM(CASE WHEN {d.unresolved()} THEN 1 ELSE 0 END) AS unresolved,
                               MAX(created_at) AS last_failure
                          FROM {FAILURES_TABLE} {detail_where} GROUP BY game_id"""  # noqa: S608
            if self.has_games:
                sql = f"""SELECT f.game_id, g.title, g.bgg_id, f.failures, f.unresolved,
                                 f.last_failure
                            FROM ({inner}) AS f LEFT JOIN {GAMES_TABLE} AS g ON g.id = f.game_id"""  # noqa: S608
            else:
                sql = f"""SELECT game_id, NULL, NULL, failures, unresolved, last_failure
                            FROM ({inner}) AS f"""  # noqa: S608
            details = self._rows(sql, detail_params)
        frame = pd.DataFrame(details, columns=columns)
        frame["last_failure"] = pd.Series(
            [_stamp(v) for v in frame["last_failure"]], index=frame.index, dtype=UTC_DTYPE
        )
        frame["title"] = frame["title"].astype(object).where(frame["title"].notna(), None)
        frame = frame.astype(
            {"game_id": "Int64", "bgg_id": "Int64", "failures": "int64", "unresolved": "int64"}
        )
        frame = frame.sort_values(
            ["failures", "game_id"], ascending=[False, True], kind="stable", na_position="last"
        )
        return frame.reset_index(drop=True)

    def backlog(self) -> pd.DataFrame:
        """Unresolved failures per `task_type` and `error_type`: `failures`, `oldest`."""
        where, params = self._where("created_at", self.dialect.unresolved())
        rows = self._rows(
            f"""SELECT task_type, error_type, COUNT(*), MIN(created_at)
                  FROM {FAILURES_TABLE} {where}
                 GROUP BY task_type, error_type ORDER BY 3 DESC, 1, 2""",  # noqa: S608
            params,
        )
        frame = pd.DataFrame(rows, columns=["task_type", "error_type", "failures", "oldest"])
        frame["error_type"] = frame["error_type"].fillna("(none)")
        frame["oldest"] = pd.Series(
            [_stamp(v) for v in frame["oldest"]], index=frame.index, dtype=UTC_DTYPE
        )
        return frame.astype({"task_type": "str", "error_type": "str", "failures": "int64"})

    def backlog_age_bins(self) -> pd.DataFrame:
        """Unresolved failures by age (`now - created_at`) in `DURATION_EDGES` bins (`bin`,
        `label`, `failures`); rows from the future are left out (see `quality`)."""
        return self._distribution("age")[1]

    def backlog_age_quantiles(self) -> pd.Series:
        """Quantiles (0..1 step 0.01) of the unresolved failures' ages in seconds (rows from
        the future left out); empty when nothing is unresolved."""
        return self._distribution("age")[0]

    def resolution_bins(self) -> pd.DataFrame:
        """Resolved failures by time to resolution (`resolved_at - created_at`), binned as
        `backlog_age_bins`; rows resolved "before" they were created are left out."""
        return self._distribution("resolution")[1]

    def resolution_quantiles(self) -> pd.Series:
        """Quantiles (0..1 step 0.01) of the time to resolution in seconds, over resolved
        failures with a `resolved_at` not before `created_at`; empty when there are none."""
        return self._distribution("resolution")[0]

    def quality(self) -> pd.DataFrame:
        """Rows that are valid but odd, with what each check means: `check`, `rows`, `meaning`.

        Rows from the future, resolved before created, resolved without a time (or a time
        without the flag), `resolved` NULL, no `error_type`, the game deleted.
        """
        profile = self._profile()
        checks = self._checks()
        return pd.DataFrame(
            {
                "check": [name for name, _, _ in checks],
                "rows": [int(profile[name].fillna(0).sum()) for name, _, _ in checks],
                "meaning": [meaning for _, _, meaning in checks],
            }
        )

    def read_failures(
        self,
        *,
        unresolved_only: bool = False,
        limit: int | None = 100,
        chunk_rows: int = 50_000,
    ) -> pd.DataFrame:
        """Failure rows, newest first, read in chunks of `chunk_rows` (typed as
        `frames.failure_frame` returns them). `limit=None` reads every row of the window."""
        columns = ", ".join(FAILURE_COLUMNS)
        order = "ORDER BY created_at DESC, id DESC"
        params: dict[str, Any]
        if self.dialect.name == "postgresql" and limit is not None:
            # Newest first without sorting the table: one index range scan per value of
            # `resolved` on idx_task_failure_resolved (resolved, created_at), merged.
            states = ["resolved = FALSE", "resolved IS NULL"]
            if not unresolved_only:
                states.insert(0, "resolved = TRUE")
            branches = []
            params = {}
            for state in states:
                where, params = self._where("created_at", state)
                branches.append(
                    f"(SELECT {columns} FROM {FAILURES_TABLE} {where} {order} LIMIT :limit)"  # noqa: S608
                )
            sql = f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS s {order} LIMIT :limit"  # noqa: S608
            params["limit"] = int(limit)
        else:
            extra = [self.dialect.unresolved()] if unresolved_only else []
            where, params = self._where("created_at", *extra)
            sql = f"SELECT {columns} FROM {FAILURES_TABLE} {where} {order}"  # noqa: S608
            if limit is not None:
                sql += " LIMIT :limit"
                params["limit"] = int(limit)
        frames: list[pd.DataFrame] = []
        with self._connect() as conn:
            result = conn.execution_options(yield_per=chunk_rows).execute(text(sql), params)
            for part in result.partitions():
                raw = pd.DataFrame([tuple(r) for r in part], columns=list(FAILURE_COLUMNS))
                frames.append(failure_frame(raw, source=f"{self.source}: {FAILURES_TABLE}"))
        if not frames:
            return failure_frame(
                pd.DataFrame({c: pd.Series(dtype=object) for c in FAILURE_COLUMNS}),
                source=FAILURES_TABLE,
            )
        return pd.concat(frames, ignore_index=True)

    # -- runs -------------------------------------------------------------------------------

    def run_outcomes(self, bucket: int) -> pd.DataFrame:
        """Runs per time bucket (by `started_at`), `trigger` and `outcome`: `bucket`,
        `trigger`, `outcome`, `runs`. Empty when the database has no runs table."""
        columns = ["bucket", "trigger", "outcome", "runs"]
        if not self.has_runs:
            return _empty_runs(columns)
        where, params = self._where("started_at")
        d = self.dialect
        rows = self._rows(
            f"""SELECT {d.bucket_epoch("b")}, trg, outcome, n FROM (
                    SELECT {d.bucket_key("started_at")} AS b, "trigger" AS trg, outcome,
                           COUNT(*) AS n
                      FROM {RUNS_TABLE} {where}
                     GROUP BY b, "trigger", outcome) AS s
                 ORDER BY 1, 2, 3""",  # noqa: S608
            {**params, "bucket": _bucket_param(d, bucket)},
        )
        frame = pd.DataFrame(rows, columns=columns)
        frame["bucket"] = _epochs(frame["bucket"])
        return frame.astype({"trigger": "str", "outcome": "str", "runs": "int64"})

    def run_totals(self) -> pd.DataFrame:
        """Runs per `task_type`, `trigger` and `outcome` over the window, with the failures
        whose first run failed and a later retry succeeded (`recovered`, on the initial
        failure rows)."""
        columns = ["task_type", "trigger", "outcome", "runs", "recovered"]
        if not self.has_runs:
            return _empty_runs(columns)
        where, params = self._where("i.started_at")
        rows = self._rows(
            f"""SELECT i.task_type, i."trigger", i.outcome, COUNT(*),
                       SUM(CASE WHEN i.outcome = 'failure' AND i.failure_id IS NOT NULL
                                 AND EXISTS (SELECT 1 FROM {RUNS_TABLE} AS r
                                              WHERE r.failure_id = i.failure_id
                                                AND r.outcome = 'success')
                                THEN 1 ELSE 0 END)
                  FROM {RUNS_TABLE} AS i {where}
                 GROUP BY i.task_type, i."trigger", i.outcome ORDER BY 1, 2, 3""",  # noqa: S608
            params,
        )
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype(
            {
                "task_type": "str",
                "trigger": "str",
                "outcome": "str",
                "runs": "int64",
                "recovered": "int64",
            }
        )

    # -- helpers ----------------------------------------------------------------------------

    def _distribution(self, kind: str) -> tuple[pd.Series, pd.DataFrame]:
        """Quantiles and bin counts of ages (`kind="age"`) or times to resolution, from one
        query (PostgreSQL: `percentile_cont` and `COUNT(*) FILTER` in one scan; SQLite: the
        durations read in chunks)."""
        if kind in self._distributions:
            return self._distributions[kind]
        d = self.dialect
        params: dict[str, Any]
        if kind == "age":
            start, end = "created_at", ":now"
            condition = f"{d.unresolved()} AND NOT ({d.time_after('created_at', 'now')})"
            where, params = self._where("created_at", condition)
            params["now"] = self._now()
        else:
            start, end = "created_at", "resolved_at"
            where, params = self._where(
                "created_at",
                d.resolved(),
                "resolved_at IS NOT NULL",
                f"NOT ({d.column_before('resolved_at', 'created_at')})",
            )
        if d.name == "postgresql":
            below = ", ".join(
                f"COUNT(*) FILTER (WHERE {d.shorter_than(start, end, edge)})"
                for edge in DURATION_EDGES
            )
            ((count, values, *cumulative),) = self._rows(
                f"""SELECT COUNT(*), percentile_cont(CAST(:qs AS DOUBLE PRECISION[]))
                                    WITHIN GROUP (ORDER BY {end} - {start}), {below}
                      FROM {FAILURES_TABLE} {where}""",  # noqa: S608
                {**params, "qs": list(QUANTILES)},
            )
            seconds = [] if values is None else [v.total_seconds() for v in values]
            edges_below = [int(c) for c in cumulative]
            total = int(count)
        else:
            chunks: list[np.ndarray[Any, np.dtype[np.float64]]] = []
            with self._connect() as conn:
                result = conn.execution_options(yield_per=100_000).execute(
                    text(f"SELECT {d.seconds_between(start, end)} FROM {FAILURES_TABLE} {where}"),  # noqa: S608
                    params,
                )
                for part in result.partitions():
                    chunks.append(np.array([r[0] for r in part], dtype="float64"))
            data = np.concatenate(chunks) if chunks else np.array([], dtype="float64")
            data = np.maximum(data, 0.0)  # julianday() rounding can give -1e-6 for "equal"
            seconds = list(np.quantile(data, QUANTILES, method="linear")) if data.size else []
            edges_below = [int((data < edge).sum()) for edge in DURATION_EDGES]
            total = int(data.size)
        counts = np.diff([0, *edges_below, total]).tolist()
        bins = pd.DataFrame(
            {
                "bin": range(len(DURATION_LABELS)),
                "label": list(DURATION_LABELS),
                "failures": counts,
            }
        ).astype({"bin": "int64", "failures": "int64"})
        quantiles = (
            pd.Series(seconds, index=pd.Index(QUANTILES, name="quantile"), name="seconds")
            if seconds
            else pd.Series(dtype="float64", name="seconds")
        )
        self._distributions[kind] = (quantiles, bins)
        return self._distributions[kind]


def _stamp_or_none(value: object) -> pd.Timestamp | None:
    try:
        return _stamp(value)
    except ValueError:
        return None


def _bucket_param(dialect: Dialect, bucket: int) -> int | float:
    if bucket < 1:
        raise InputError(f"bucket must be at least 1 second, got {bucket}")
    return float(bucket) if dialect.name == "postgresql" else int(bucket)


def _empty_runs(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    if "bucket" in frame.columns:
        frame["bucket"] = pd.Series(dtype=UTC_DTYPE)
    for column in ("task_type", "trigger", "outcome"):
        if column in frame.columns:
            frame[column] = pd.Series(dtype="str")
    return frame


def open_tables(
    database_url: str,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    now: str | datetime | None = None,
) -> TaskTables:
    """The service's tables at `database_url` (the service's URL forms), checked.

    Raises `InputError` (unreachable, not migrated) or `MalformedRowError` (a broken row).
    """
    tables = TaskTables(
        open_engine(database_url),
        window=Window.parse(since, until),
        now=as_instant(now, name="now"),
        source="database",
    )
    try:
        tables.check()
    except Exception:
        tables.close()
        raise
    return tables
