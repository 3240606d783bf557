"""What every question reads through: the engine, the window, the reference time, read-only
connections, and the times the drivers return, as aware UTC."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Engine, Executable, text

from chaos.closing import Closing
from notebooks.reliability.db import GAMES_TABLE, RUNS_TABLE, has_table
from notebooks.reliability.errors import InputError
from notebooks.reliability.sql import Dialect, dialect_for
from notebooks.reliability.timeutil import UTC_DTYPE, as_instant

T = TypeVar("T")


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


class Reader(Closing):
    """`background_task_failures` and `background_task_runs` in one window, read one query at a
    time; each question extends it and `tables.TaskTables` combines them.

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
        self._memos: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}

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

    def _rows(self, query: Executable) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def _within(
        self, time: ColumnElement[Any], *extra: ColumnElement[bool]
    ) -> list[ColumnElement[bool]]:
        """`extra` and the window on `time`, as conditions for `where(*...)`."""
        d, conditions = self.dialect, list(extra)
        if self.window.since is not None:
            conditions.append(d.time(time) >= d.time(self.window.since))
        if self.window.until is not None:
            conditions.append(d.time(time) < d.time(self.window.until))
        return conditions

    def _memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once (a second thread asking meanwhile waits for the first)."""
        with self._locks.setdefault(key, threading.Lock()):
            if key not in self._memos:
                self._memos[key] = compute()
            return cast(T, self._memos[key])


def stamp(value: object) -> pd.Timestamp | None:
    """A value from a MIN/MAX query (naive UTC datetime or SQLite text) as aware UTC."""
    if value is None:
        return None
    text = str(value).replace(" ", "T", 1) if isinstance(value, str) else None
    stamp: object = pd.Timestamp(text if text is not None else value)  # type: ignore[arg-type]
    if not isinstance(stamp, pd.Timestamp):  # NaT
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def stamp_or_none(value: object) -> pd.Timestamp | None:
    """`stamp`, or None for text that is not a time."""
    try:
        return stamp(value)
    except ValueError:
        return None


def stamps(values: pd.Series) -> pd.Series:
    """`stamp` of each value, as an aware UTC column."""
    return pd.Series([stamp(v) for v in values], index=values.index, dtype=UTC_DTYPE)


def epochs(values: pd.Series) -> pd.Series:
    """Epoch seconds as aware UTC timestamps."""
    return pd.to_datetime(values.astype("float64"), unit="s", utc=True).astype(UTC_DTYPE)
