"""Rows of the failure and run tables as DataFrames with one set of dtypes, whatever the source.

Rows come from a database (typed, but SQLite stores anything anywhere), from a CSV export
(all text: `t`/`true`/`1`, empty or `\\N` for NULL, times with or without a zone) or from
hand-made frames in tests. `failure_frame` and `run_frame` turn any of them into the same
columns and dtypes, or raise `MalformedRowError` naming the first row that is not a row of
that table. A column that is entirely NULL (pandas reads it as `object`) is fine.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.timeutil import (
    NULL_TEXTS,
    UTC_DTYPE,
    first_position,
    null_mask,
    reject_first,
    utc_series,
)

#: background_task_failures: column -> kind (`int`, `text`, `bool`, `time`).
FAILURE_COLUMNS: Mapping[str, str] = {
    "id": "int",
    "task_type": "text",
    "game_id": "int",
    "error_message": "text",
    "error_type": "text",
    "stack_trace": "text",
    "retry_count": "int",
    "url": "text",
    "resolved": "bool",
    "resolved_at": "time",
    "created_at": "time",
}
FAILURE_REQUIRED = ("task_type", "created_at")

#: background_task_runs: column -> kind.
RUN_COLUMNS: Mapping[str, str] = {
    "id": "int",
    "record_id": "text",
    "task_type": "text",
    "game_id": "int",
    "failure_id": "int",
    "outcome": "text",
    "attempts": "int",
    "trigger": "text",
    "error_type": "text",
    "started_at": "time",
    "finished_at": "time",
    "duration_ms": "float",
}
RUN_REQUIRED = ("task_type", "outcome", "started_at")
#: `superseded`: a download that finished for a game deleted or re-imported meanwhile.
OUTCOMES = frozenset({"success", "failure", "superseded"})

#: Text columns the schema declares NOT NULL: an empty field there is an empty text.
NOT_NULL_TEXT = frozenset({"task_type", "error_message", "outcome", "record_id"})
_NOT_BOOL = object()  # what a value that is neither true, false nor NULL parses to
_TRUE = frozenset({"t", "true", "1", "yes", "y"})
_FALSE = frozenset({"f", "false", "0", "no", "n"})


def _labels(frame: pd.DataFrame, first_record: int) -> pd.Series:
    """How each row is named in errors: `id=42` when there is an id, else `record 7`."""
    numbers = pd.Series(range(first_record, first_record + len(frame)), index=frame.index)
    records = "record " + numbers.astype(str)
    if "id" not in frame.columns:
        return records
    ids = frame["id"].astype(object)
    has_id = ~null_mask(ids)
    return records.where(~has_id, "id=" + ids.astype(str).str.strip())


def _ints(values: pd.Series, *, source: str, column: str, labels: pd.Series) -> pd.Series:
    missing = null_mask(values)
    numbers = pd.to_numeric(values.where(~missing, None), errors="coerce")
    bad = ~missing & (numbers.isna() | (numbers % 1 != 0))
    reject_first(
        bad, values, source=source, column=column, labels=labels, problem="is not a whole number"
    )
    return numbers.astype("Int64")


def _floats(values: pd.Series, *, source: str, column: str, labels: pd.Series) -> pd.Series:
    missing = null_mask(values)
    numbers = pd.to_numeric(values.where(~missing, None), errors="coerce")
    bad = ~missing & numbers.isna()
    reject_first(
        bad, values, source=source, column=column, labels=labels, problem="is not a number"
    )
    return numbers.astype("Float64")


def _bools(values: pd.Series, *, source: str, column: str, labels: pd.Series) -> pd.Series:
    def one(value: object) -> object:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return {0: False, 1: True}.get(int(value)) if value in (0, 1) else _NOT_BOOL
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if str(value).strip() in NULL_TEXTS:
            return None
        return _NOT_BOOL

    parsed = values.map(one)
    bad = parsed.map(lambda v: v is _NOT_BOOL)
    reject_first(
        bad, values, source=source, column=column, labels=labels, problem="is not true or false"
    )
    return parsed.astype("boolean")


def _texts(values: pd.Series, *, nullable: bool) -> pd.Series:
    """Text; in a nullable column an empty field or `\\N` is NULL (what CSV exports write)."""
    missing = values.isna() | (null_mask(values) if nullable else False)
    result = values.astype(object).where(~missing, None)
    return result.map(lambda v: None if v is None else str(v)).astype("str")


def _convert(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    required: tuple[str, ...],
    *,
    source: str,
    first_record: int,
) -> pd.DataFrame:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{source} has no {', '.join(missing)} column: expected the columns "
            f"{', '.join(columns)} (at least {', '.join(required)})"
        )
    labels = _labels(frame, first_record)
    out: dict[str, pd.Series] = {}
    for column, kind in columns.items():
        if column not in frame.columns:
            if column == "id":
                out[column] = pd.Series(
                    range(first_record, first_record + len(frame)), index=frame.index
                ).astype("Int64")
            elif kind == "time":
                out[column] = pd.Series(pd.NaT, index=frame.index, dtype=UTC_DTYPE)
            elif kind == "bool":
                out[column] = pd.Series(pd.NA, index=frame.index, dtype="boolean")
            elif kind == "int":
                out[column] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
            elif kind == "float":
                out[column] = pd.Series(pd.NA, index=frame.index, dtype="Float64")
            else:
                out[column] = pd.Series(None, index=frame.index, dtype="str")
            continue
        values = frame[column]
        if kind == "int":
            out[column] = _ints(values, source=source, column=column, labels=labels)
        elif kind == "float":
            out[column] = _floats(values, source=source, column=column, labels=labels)
        elif kind == "bool":
            out[column] = _bools(values, source=source, column=column, labels=labels)
        elif kind == "time":
            out[column] = utc_series(values, source=source, column=column, labels=labels)
        else:
            out[column] = _texts(values, nullable=column not in NOT_NULL_TEXT)
    for column in required:
        absent = out[column].isna()
        if columns[column] == "text":
            absent |= out[column].fillna("").str.strip() == ""
        if absent.any():
            first = first_position(absent)
            raise MalformedRowError(source, str(labels.iloc[first]), f"{column} is empty")
    return pd.DataFrame(out, index=frame.index)


def failure_frame(frame: pd.DataFrame, *, source: str, first_record: int = 1) -> pd.DataFrame:
    """Rows of `background_task_failures` with the standard dtypes.

    `id`, `game_id`, `retry_count`: Int64; `resolved`: boolean (NULL kept: it counts as
    unresolved); `created_at`, `resolved_at`: aware UTC; the rest text. Missing optional
    columns are added empty; a negative `retry_count` is malformed.
    """
    out = _convert(
        frame, FAILURE_COLUMNS, FAILURE_REQUIRED, source=source, first_record=first_record
    )
    negative = out["retry_count"].fillna(0) < 0
    if negative.any():
        first = first_position(negative)
        label = _labels(frame, first_record).iloc[first]
        raise MalformedRowError(
            source, str(label), f"retry_count {out['retry_count'].iloc[first]} is negative"
        )
    return out


def run_frame(frame: pd.DataFrame, *, source: str, first_record: int = 1) -> pd.DataFrame:
    """Rows of `background_task_runs` with the standard dtypes (`trigger` defaults to
    `initial`; an `outcome` other than success/failure/superseded is malformed)."""
    out = _convert(frame, RUN_COLUMNS, RUN_REQUIRED, source=source, first_record=first_record)
    out["trigger"] = out["trigger"].fillna("initial")
    wrong = ~out["outcome"].isin(OUTCOMES)
    if wrong.any():
        first = first_position(wrong)
        label = _labels(frame, first_record).iloc[first]
        raise MalformedRowError(
            source,
            str(label),
            f"outcome {out['outcome'].iloc[first]!r} is not success, failure or superseded",
        )
    return out
