"""Rows of the two tables from any source, typed, or an error naming the row."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.frames import failure_frame, run_frame


def csv_like(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


def test_psql_style_values() -> None:
    frame = failure_frame(
        csv_like(
            id=["1", "2", "3"],
            task_type=["thumbnail_download"] * 3,
            resolved=["t", "f", "\\N"],
            retry_count=["3", "", "0"],
            error_type=["ReadTimeout", "", "\\N"],
            created_at=["2026-11-30 10:00:00", "2026-11-30T10:00:00Z", "2026-11-30T11:00+01:00"],
        ),
        source="x.csv",
    )
    assert frame["resolved"].tolist() == [True, False, pd.NA]
    assert frame["retry_count"].tolist() == [3, pd.NA, 0]
    assert frame["error_type"].isna().tolist() == [False, True, True]
    assert frame["created_at"].nunique() == 1
    assert frame["resolved_at"].isna().all()
    assert str(frame["game_id"].dtype) == "Int64"


@given(value=st.sampled_from(["true", "TRUE", "t", "1", "yes", True, 1]))
def test_true_spellings(value: object) -> None:
    frame = failure_frame(
        csv_like(task_type=["t"], created_at=["2026-11-30"], resolved=[value]), source="x"
    )
    assert frame["resolved"].iloc[0] is True or bool(frame["resolved"].iloc[0]) is True


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("resolved", "maybe", "x.csv id=7: resolved 'maybe' is not true or false"),
        ("retry_count", "2.5", "x.csv id=7: retry_count '2.5' is not a whole number"),
        ("retry_count", "-1", "x.csv id=7: retry_count -1 is negative"),
        ("created_at", "", "x.csv id=7: created_at is empty"),
        ("task_type", "  ", "x.csv id=7: task_type is empty"),
        ("game_id", "ten", "x.csv id=7: game_id 'ten' is not a whole number"),
    ],
)
def test_malformed_rows_are_named(column: str, value: object, message: str) -> None:
    good = {
        "id": "6",
        "task_type": "t",
        "created_at": "2026-11-30",
        "resolved": "f",
        "retry_count": "1",
        "game_id": "1",
    }
    bad = {**good, "id": "7", column: value}
    frame = csv_like(**{k: [good[k], bad[k]] for k in good})
    with pytest.raises(MalformedRowError) as caught:
        failure_frame(frame, source="x.csv")
    assert str(caught.value) == message


def test_rows_without_ids_are_named_by_record_number() -> None:
    frame = csv_like(task_type=["t", "t"], created_at=["2026-11-30", "never"])
    with pytest.raises(MalformedRowError, match=r"x\.csv record 12: created_at 'never'"):
        failure_frame(frame, source="x.csv", first_record=11)


def test_missing_required_columns() -> None:
    with pytest.raises(InputError, match="has no created_at column"):
        failure_frame(csv_like(task_type=["t"]), source="x.csv")


def test_runs() -> None:
    frame = run_frame(
        csv_like(
            task_type=["t", "t"],
            outcome=["success", "failure"],
            started_at=["2026-11-30 10:00", "2026-11-30 10:01"],
            trigger=["", "auto_retry"],
        ),
        source="runs.csv",
    )
    assert frame["trigger"].tolist() == ["initial", "auto_retry"]
    with pytest.raises(MalformedRowError, match="record 1: outcome 'ok' is not success"):
        run_frame(csv_like(task_type=["t"], outcome=["ok"], started_at=["2026-11-30"]), source="r")
