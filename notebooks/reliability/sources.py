"""The notebooks' data sources from their parameters: None when a parameter is empty (not
given), the loaded data when it is, an `InputError` when it is given but unusable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from notebooks.reliability.chaos import load_chaos_events, load_chaos_journal, load_chaos_summary
from notebooks.reliability.csv_tables import load_csv_tables
from notebooks.reliability.errors import InputError
from notebooks.reliability.loadrun import LoadRun, load_run
from notebooks.reliability.paths import REPO, locate
from notebooks.reliability.sentry_load import load_sentry
from notebooks.reliability.tables import TaskTables, open_tables
from notebooks.reliability.testcount import TestCount, load_tests


def task_tables(
    *,
    database_url: str = "",
    failures_csv: str = "",
    runs_csv: str = "",
    since: str = "",
    until: str = "",
    now: str = "",
) -> TaskTables | None:
    """The failure and run tables from a database URL, else from CSV exports, else None."""
    if database_url:
        return open_tables(database_url, since=since, until=until, now=now or None)
    if failures_csv:
        return load_csv_tables(
            locate(failures_csv),
            locate(runs_csv) if runs_csv else None,
            since=since,
            until=until,
            now=now or None,
        )
    if runs_csv:
        raise InputError("runs_csv without failures_csv: export both tables")
    return None


def sentry_events(paths: list[str] | str) -> pd.DataFrame | None:
    """Every event in the Sentry exports, or None when none is given."""
    if isinstance(paths, str):
        paths = [p for p in paths.split(",") if p.strip()]
    return load_sentry([locate(p) for p in paths]) if paths else None


def chaos_events(path: str) -> pd.DataFrame | None:
    """The harness events (`events.jsonl`), or None."""
    return load_chaos_events(locate(path)) if path else None


def chaos_summary(path: str) -> pd.DataFrame | None:
    """The chaos summary, one row per scenario, or None."""
    return load_chaos_summary(locate(path)) if path else None


def chaos_journal(path: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The chaos journal as (experiments, activities), or None."""
    return load_chaos_journal(locate(path)) if path else None


def load_results(folder: str) -> LoadRun | None:
    """The load run in `folder`, or None (no folder, or no run in it)."""
    return load_run(locate(folder)) if folder else None


def test_count(path: str) -> TestCount | None:
    """The test count from a JUnit XML, tests.json or collect-only output, or None."""
    return load_tests(locate(path)) if path else None


def output_folder(path: str) -> Path:
    """The notebook's output folder (relative: to the repository), created."""
    given = Path(path or "reports/notebooks")
    folder = given if given.is_absolute() else REPO / given
    folder.mkdir(parents=True, exist_ok=True)
    return folder
