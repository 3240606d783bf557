"""The derived figures of the failure analysis."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notebooks.reliability.failures import (
    analyse_failures,
    backlog_table,
    duration_summary,
    success_by_bucket,
    success_summary,
    with_failure_class,
)
from notebooks.reliability.tables import QUANTILES, open_tables
from tests.notebooks.support import SqliteDb

T0 = pd.Timestamp("2026-11-30 10:00:00", tz="UTC")


def outcomes(rows: list[tuple[int, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"bucket": T0 + pd.Timedelta(minutes=m), "trigger": t, "outcome": o, "runs": n}
            for m, t, o, n in rows
        ]
    )


def test_success_by_bucket_counts_first_runs_against_a_strict_target() -> None:
    runs = outcomes(
        [
            (0, "initial", "success", 19),
            (0, "initial", "failure", 1),
            (0, "auto_retry", "success", 1),
            (1, "initial", "success", 96),
            (1, "initial", "failure", 4),
        ]
    )
    table = success_by_bucket(runs, target=0.95)
    assert table["success_rate"].tolist() == [0.95, 0.96]
    assert table["meets_target"].tolist() == [False, True]
    every = success_by_bucket(runs, target=0.95, trigger=None)
    assert every["runs"].tolist() == [21, 100]
    assert success_by_bucket(runs.iloc[0:0]).empty


@given(successes=st.integers(0, 1000), failures=st.integers(0, 1000))
def test_success_rate_is_a_share(successes: int, failures: int) -> None:
    runs = outcomes([(0, "initial", "success", successes), (0, "initial", "failure", failures)])
    table = success_by_bucket(runs)
    total = successes + failures
    if total == 0:
        assert table["success_rate"].isna().all()
    else:
        assert table["success_rate"].iloc[0] == successes / total


def test_success_summary() -> None:
    totals = pd.DataFrame(
        {
            "task_type": ["t"] * 4,
            "trigger": ["initial", "initial", "auto_retry", "manual_retry"],
            "outcome": ["success", "failure", "success", "failure"],
            "runs": [90, 10, 6, 2],
            "recovered": [0, 6, 0, 0],
        }
    )
    summary = success_summary(totals)
    assert (summary.tasks, summary.success_rate, summary.eventual_success_rate) == (100, 0.9, 0.96)
    assert summary.meets_target is False
    assert summary.retries == 8 and summary.retry_successes == 6
    assert dict(summary.table().values.tolist())["target (> 95%)"] == "missed"
    empty = success_summary(totals.iloc[0:0])
    assert empty.success_rate is None and empty.meets_target is None


def test_duration_summary() -> None:
    quantiles = pd.Series([float(q * 100) for q in QUANTILES], index=QUANTILES)
    table = duration_summary(quantiles, what="ttr")
    assert table["seconds"].tolist() == pytest.approx([50.0, 90.0, 99.0, 100.0])
    assert table["statistic"].tolist()[0] == "ttr p50"
    assert duration_summary(pd.Series(dtype=float))["readable"].tolist() == ["n/a"] * 4


def test_classes_and_backlog() -> None:
    frame = pd.DataFrame(
        {
            "task_type": ["t", "t"],
            "error_type": ["ReadTimeout", "ImageNotFound"],
            "failures": [2, 1],
            "oldest": pd.Series([T0, T0], dtype="datetime64[us, UTC]"),
        }
    )
    assert with_failure_class(frame)["failure_class"].tolist() == ["transient", "permanent"]
    table = backlog_table(frame, T0 + pd.Timedelta(hours=2))
    assert table["oldest_age"].tolist() == ["2.0 h", "2.0 h"]


def test_the_whole_analysis_on_an_empty_table(sqlite_db: Callable[[], SqliteDb]) -> None:
    db = sqlite_db()
    with open_tables(db.url) as tables:
        analysis = analyse_failures(tables)
    assert analysis.overview.failures == 0
    assert analysis.over_time.empty and analysis.messages.empty and analysis.games.empty
    assert analysis.resolution_quantiles.empty
    summary = analysis.summary()
    json.dumps(summary)
    assert summary["task_success_rate"] is None
    assert dict(analysis.overview_table().values.tolist())["failure rows"] == "0"
