"""The failure and run tables, read through SQL that aggregates in the database.

A million failure rows are ~390 MB in pandas and take seconds to read; the same hourly counts
take a fraction of a second in the database. So every figure here is one aggregate query
that returns only what a plot or a table needs (counts per bucket, per type, quantiles, bins),
and only the drill-down (`read_failures`) returns rows, a bounded number, read in chunks.

`TaskTables` wraps a synchronous SQLAlchemy engine on the service's database (SQLite or
PostgreSQL, see `notebooks.reliability.db`) or on the in-memory SQLite database a CSV export
was loaded into (`notebooks.reliability.csv_tables`): the same queries serve both, written in
SQLAlchemy Core (what differs between the databases is in `sql.py`). Each question is a class of
`notebooks.reliability.queries`, and `TaskTables` answers them all: `reader` (connections, the
window), `profile` (the one scan: validation and quality), `counts` (overview, over time, by
kind, by game), `durations` (backlog, times to resolution), `runs`, `drilldown` (rows).
"""

from __future__ import annotations

from datetime import datetime

from notebooks.reliability.db import open_engine
from notebooks.reliability.queries.counts import Counts, Overview
from notebooks.reliability.queries.drilldown import Drilldown
from notebooks.reliability.queries.durations import QUANTILES, Durations
from notebooks.reliability.queries.reader import Window
from notebooks.reliability.queries.runs import Runs
from notebooks.reliability.timeutil import as_instant

__all__ = ["QUANTILES", "Overview", "TaskTables", "Window", "open_tables"]


class TaskTables(Counts, Durations, Runs, Drilldown):
    """Aggregates over `background_task_failures` and `background_task_runs` in one window
    (the arguments: see `Reader`)."""


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
