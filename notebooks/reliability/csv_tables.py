"""CSV exports of the failure and run tables, loaded into an in-memory SQLite database.

An export made by `psql -c "\\copy background_task_failures TO 'f.csv' CSV HEADER"`,
`sqlite3 -csv -header`, pandas' `to_csv` or a spreadsheet is read in chunks, each row checked
and typed (`frames.failure_frame` / `frames.run_frame`: booleans as t/f, true/false, 1/0;
NULL as an empty field or `\\N`; times with or without a zone, naive = UTC) and written to
an in-memory SQLite database with the service's table names, so `TaskTables` runs the same
queries on an export as on the database itself. A broken row is an error naming its record
(`id=42`, or `record 7` without an id column); a line with more fields than the header is
named by its line (`line 9: has 12 fields, the header 11`), the first one too (pandas would
take its first field as an index and shift the rest).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import StaticPool

from notebooks.reliability.db import FAILURES_TABLE, RUNS_TABLE
from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.frames import (
    FAILURE_COLUMNS,
    FAILURE_REQUIRED,
    RUN_COLUMNS,
    RUN_REQUIRED,
    failure_frame,
    run_frame,
)
from notebooks.reliability.tables import TaskTables, Window
from notebooks.reliability.timeutil import as_instant

_SQL_TYPES = {"int": "INTEGER", "text": "TEXT", "bool": "INTEGER", "time": "TEXT", "float": "REAL"}


def _create(engine: Engine, table: str, columns: dict[str, str]) -> None:
    body = ", ".join(f'"{name}" {_SQL_TYPES[kind]}' for name, kind in columns.items())
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} ({body})"))


def _sqlite_values(frame: pd.DataFrame, columns: dict[str, str]) -> list[dict[str, object]]:
    """Typed rows as SQLite values: times as naive UTC text, booleans as 0/1, NULL as None."""
    out = pd.DataFrame(index=frame.index)
    for name, kind in columns.items():
        values = frame[name]
        if kind == "time":
            text_values = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            out[name] = text_values.astype(object).where(values.notna(), None)
        elif kind == "bool":
            out[name] = values.astype("Int64").astype(object).where(values.notna(), None)
        else:
            out[name] = values.astype(object).where(values.notna(), None)
    return out.to_dict("records")  # type: ignore[return-value]


_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _too_many_fields(path: Path, expected: int, line: int, seen: int) -> MalformedRowError:
    return MalformedRowError(str(path), f"line {line}", f"has {seen} fields, the header {expected}")


def _check_first_record(path: Path) -> None:
    """A first record with one field more than the header would become pandas' index (every
    value shifted one column left, silently); refuse it as pandas refuses any later one."""
    with path.open(newline="", encoding="utf-8") as lines:
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            first = next(reader, None)
        except csv.Error:
            return  # pandas says what is wrong with it
        if header is not None and first is not None and len(first) > len(header):
            raise _too_many_fields(path, len(header), reader.line_num, len(first))


def _load(
    engine: Engine,
    path: Path,
    *,
    table: str,
    columns: dict[str, str],
    required: tuple[str, ...],
    convert: Callable[..., pd.DataFrame],
    chunk_rows: int,
) -> int:
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected a CSV export of {table})")
    try:
        header = [str(c).strip() for c in pd.read_csv(path, dtype=str, nrows=0).columns]
        if not set(required) <= set(header):
            raise InputError(
                f"{path} is not a CSV export of {table}: it has the columns "
                f"{', '.join(header[:8]) or '(none)'}; expected at least {', '.join(required)}"
            )
        _check_first_record(path)
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join(f":{c}" for c in columns)
        loaded = 0
        with pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8"
        ) as reader:
            for chunk in reader:
                if chunk.empty:
                    continue
                chunk.columns = [str(c).strip() for c in chunk.columns]
                typed = convert(chunk, source=str(path), first_record=loaded + 1)
                with engine.begin() as conn:
                    conn.execute(
                        text(f"INSERT INTO {table} ({names}) VALUES ({marks})"),  # noqa: S608
                        _sqlite_values(typed, columns),
                    )
                loaded += len(chunk)
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{path} is empty: expected a CSV export of {table} with a header row"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        counted = _FIELD_COUNT.search(reason)
        if counted:
            expected, line, seen = (int(n) for n in counted.groups())
            raise _too_many_fields(path, expected, line, seen) from None
        raise InputError(f"{path} is not readable as CSV: {reason}") from None
    return loaded


def load_csv_tables(
    failures_csv: str | Path,
    runs_csv: str | Path | None = None,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    now: str | datetime | None = None,
    chunk_rows: int = 50_000,
) -> TaskTables:
    """`TaskTables` over CSV exports of `background_task_failures` (and optionally
    `background_task_runs`). Raises `InputError` / `MalformedRowError` for bad files or rows.

    A header-only export is a valid, empty table.
    """
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    try:
        for path, table, columns, required, convert in (
            (failures_csv, FAILURES_TABLE, FAILURE_COLUMNS, FAILURE_REQUIRED, failure_frame),
            (runs_csv, RUNS_TABLE, RUN_COLUMNS, RUN_REQUIRED, run_frame),
        ):
            if path is None:
                continue  # no runs export
            _create(engine, table, dict(columns))
            _load(
                engine,
                Path(path),
                table=table,
                columns=dict(columns),
                required=required,
                convert=convert,
                chunk_rows=chunk_rows,
            )
    except Exception:
        engine.dispose()
        raise
    return TaskTables(
        engine,
        window=Window.parse(since, until),
        now=as_instant(now, name="now"),
        source=Path(failures_csv).name,
    )
