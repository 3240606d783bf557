"""Superseded runs (issue 12, item 2) are valid rows that count neither way in task success."""

from __future__ import annotations

import pandas as pd

from notebooks.reliability.failures import success_by_bucket, success_summary
from notebooks.reliability.frames import run_frame
from tests.notebooks.test_failures import outcomes


def test_a_superseded_run_is_a_valid_row() -> None:
    frame = pd.DataFrame(
        {
            "task_type": ["thumbnail_download"],
            "outcome": ["superseded"],
            "started_at": ["2026-12-06T06:00:00+00:00"],
        }
    )
    assert run_frame(frame, source="runs.csv")["outcome"].tolist() == ["superseded"]


def test_superseded_runs_count_neither_as_success_nor_as_failure() -> None:
    runs = outcomes(
        [
            (0, "initial", "success", 19),
            (0, "initial", "failure", 1),
            (0, "initial", "superseded", 5),
        ]
    )
    assert success_by_bucket(runs, target=0.95)["runs"].tolist() == [20]
    totals = runs.drop(columns="bucket").assign(task_type="t", recovered=0)
    summary = success_summary(totals)
    assert (summary.tasks, summary.success_rate) == (20, 0.95)
