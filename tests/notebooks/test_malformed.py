"""Malformed rows, found by hypothesis: valid rows of every loader's input with one random row
corrupted (a bad timestamp, a required field missing, a value of the wrong type, a line cut
short or not JSON), and the loader's documented error naming exactly that row.

The CSV exports of the failure and run tables name a row by its `id` (`id=42`), or by its
record number without an id column (`record 7`, counted across chunks); the Sentry JSON-lines
export and the harness's `events.jsonl` by their line (`line 12`, blank lines counted); a
Discover CSV by its record. A line pandas cannot split into the header's fields is named by
pandas' own line number.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notebooks.reliability.chaos import load_chaos_events
from notebooks.reliability.csv_tables import load_csv_tables
from notebooks.reliability.errors import MalformedRowError
from notebooks.reliability.sentry_load import load_sentry
from system.observability.sentry_export import to_api_event
from tests.notebooks.strategies import START, failure_rows, run_rows, zone_text
from tests.notebooks.support import FAILURE_COLUMNS, RUN_COLUMNS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOT_TIMES = st.sampled_from(
    ["yesterday", "soon", "2026-13-40 10:00:00", "30/11/2026 10:00", "2026-11-31T25:00", "1.5"]
)
NOT_WHOLE = st.sampled_from(["three", "2.5", "1e", "x1", "--1"])
NOT_BOOLS = st.sampled_from(["maybe", "2", "yes please", "-1", "tru"])
EMPTY = st.sampled_from(["", "\\N"])
BLANK_TEXT = st.sampled_from(["", "   "])


@dataclass(frozen=True)
class Corruption:
    """A broken value for `column`, and the problem the loader must name."""

    column: str
    values: st.SearchStrategy[str]
    problem: Callable[[str], str]


FAILURE_CORRUPTIONS = (
    Corruption("created_at", NOT_TIMES, lambda v: f"created_at {v!r} is not a timestamp"),
    Corruption("resolved_at", NOT_TIMES, lambda v: f"resolved_at {v!r} is not a timestamp"),
    Corruption("created_at", EMPTY, lambda v: "created_at is empty"),
    Corruption("task_type", BLANK_TEXT, lambda v: "task_type is empty"),
    Corruption("retry_count", NOT_WHOLE, lambda v: f"retry_count {v!r} is not a whole number"),
    Corruption(
        "retry_count",
        st.integers(-99, -1).map(str),
        lambda v: f"retry_count {v} is negative",
    ),
    Corruption("game_id", NOT_WHOLE, lambda v: f"game_id {v!r} is not a whole number"),
    Corruption("resolved", NOT_BOOLS, lambda v: f"resolved {v!r} is not true or false"),
    Corruption("id", NOT_WHOLE, lambda v: f"id {v!r} is not a whole number"),
)
RUN_CORRUPTIONS = (
    Corruption("started_at", NOT_TIMES, lambda v: f"started_at {v!r} is not a timestamp"),
    Corruption("finished_at", NOT_TIMES, lambda v: f"finished_at {v!r} is not a timestamp"),
    Corruption("started_at", EMPTY, lambda v: "started_at is empty"),
    Corruption("task_type", BLANK_TEXT, lambda v: "task_type is empty"),
    Corruption("outcome", BLANK_TEXT, lambda v: "outcome is empty"),
    Corruption(
        "outcome",
        st.sampled_from(["ok", "SUCCESS", "failed", "done"]),
        lambda v: f"outcome {v!r} is not success, failure or superseded",
    ),
    Corruption("attempts", NOT_WHOLE, lambda v: f"attempts {v!r} is not a whole number"),
    Corruption(
        "duration_ms",
        st.sampled_from(["fast", "12ms", "1,5"]),
        lambda v: f"duration_ms {v!r} is not a number",
    ),
)


def csv_value(value: object, *, zone: int, aware: bool) -> str:
    """A value as the exports write it: times naive or with a zone, booleans t/f, NULL empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return zone_text(value, zone, aware=aware)
    return str(value)


def csv_rows(
    rows: list[dict[str, Any]], columns: tuple[str, ...], *, zone: int, aware: bool
) -> list[list[str]]:
    return [[csv_value(row[c], zone=zone, aware=aware) for c in columns] for row in rows]


def write(path: Path, header: list[str], lines: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(lines)
    return path


def label(
    row: dict[str, Any], index: int, *, with_ids: bool, corruption: Corruption, value: str
) -> str:
    """How the loader must name row `index` (0-based) of the export."""
    if not with_ids:
        return f"record {index + 1}"
    if corruption.column == "id":
        return f"id={value.strip()}"
    return f"id={row['id']}"


def expect_named(load: Callable[[], object], *, source: Path, row: str, problem: str) -> None:
    with pytest.raises(MalformedRowError) as caught:
        load()
    error = caught.value
    assert (error.source, error.row, error.problem) == (str(source), row, problem)
    assert str(error) == f"{source} {row}: {problem}"
    assert "\n" not in str(error)


# -- the failure and run tables, as CSV exports --------------------------------------------------


@SETTINGS
@given(
    rows=failure_rows(min_size=1, max_size=15),
    data=st.data(),
    with_ids=st.booleans(),
    aware=st.booleans(),
    zone=st.integers(-11, 12),
    chunk_rows=st.integers(1, 7),
)
def test_a_corrupted_failure_row_is_named(
    rows: list[dict[str, Any]],
    data: st.DataObject,
    with_ids: bool,
    aware: bool,
    zone: int,
    chunk_rows: int,
) -> None:
    columns = FAILURE_COLUMNS if with_ids else FAILURE_COLUMNS[1:]
    choices = [c for c in FAILURE_CORRUPTIONS if c.column in columns]
    corruption = data.draw(st.sampled_from(choices), label="corruption")
    value = data.draw(corruption.values, label="value")
    index = data.draw(st.integers(0, len(rows) - 1), label="row")
    lines = csv_rows(rows, columns, zone=zone, aware=aware)
    lines[index][columns.index(corruption.column)] = value
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "failures.csv", list(columns), lines)
        expect_named(
            lambda: load_csv_tables(path, chunk_rows=chunk_rows),
            source=path,
            row=label(rows[index], index, with_ids=with_ids, corruption=corruption, value=value),
            problem=corruption.problem(value),
        )


@SETTINGS
@given(
    runs=run_rows(min_size=1, max_size=15),
    data=st.data(),
    with_ids=st.booleans(),
    aware=st.booleans(),
    zone=st.integers(-11, 12),
    chunk_rows=st.integers(1, 7),
)
def test_a_corrupted_run_row_is_named(
    runs: list[dict[str, Any]],
    data: st.DataObject,
    with_ids: bool,
    aware: bool,
    zone: int,
    chunk_rows: int,
) -> None:
    columns = RUN_COLUMNS if with_ids else RUN_COLUMNS[1:]
    corruption = data.draw(st.sampled_from(RUN_CORRUPTIONS), label="corruption")
    value = data.draw(corruption.values, label="value")
    index = data.draw(st.integers(0, len(runs) - 1), label="row")
    lines = csv_rows(runs, columns, zone=zone, aware=aware)
    lines[index][columns.index(corruption.column)] = value
    with tempfile.TemporaryDirectory() as folder:
        failures = write(
            Path(folder) / "failures.csv",
            ["task_type", "created_at"],
            [["thumbnail_download", "2026-11-30 10:00:00"]],
        )
        path = write(Path(folder) / "runs.csv", list(columns), lines)
        expect_named(
            lambda: load_csv_tables(failures, path, chunk_rows=chunk_rows),
            source=path,
            row=label(runs[index], index, with_ids=with_ids, corruption=corruption, value=value),
            problem=corruption.problem(value),
        )


@SETTINGS
@given(
    rows=failure_rows(min_size=1, max_size=15),
    data=st.data(),
    with_ids=st.booleans(),
    chunk_rows=st.integers(1, 7),
)
def test_a_failure_row_cut_short_is_named(
    rows: list[dict[str, Any]], data: st.DataObject, with_ids: bool, chunk_rows: int
) -> None:
    """A line that ends before `created_at` (the last column): the required field is missing."""
    columns = FAILURE_COLUMNS if with_ids else FAILURE_COLUMNS[1:]
    index = data.draw(st.integers(0, len(rows) - 1), label="row")
    keep = data.draw(st.integers(columns.index("task_type") + 1, len(columns) - 1), label="keep")
    lines = csv_rows(rows, columns, zone=0, aware=True)
    lines[index] = lines[index][:keep]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "failures.csv", list(columns), lines)
        expect_named(
            lambda: load_csv_tables(path, chunk_rows=chunk_rows),
            source=path,
            row=f"id={rows[index]['id']}" if with_ids else f"record {index + 1}",
            problem="created_at is empty",
        )


@SETTINGS
@given(
    rows=failure_rows(min_size=1, max_size=15),
    data=st.data(),
    with_ids=st.booleans(),
    chunk_rows=st.integers(1, 7),
)
def test_a_failure_row_with_fields_too_many_is_named_by_its_line(
    rows: list[dict[str, Any]], data: st.DataObject, with_ids: bool, chunk_rows: int
) -> None:
    """Also the first: pandas would take its first field as an index and shift the rest."""
    columns = FAILURE_COLUMNS if with_ids else FAILURE_COLUMNS[1:]
    index = data.draw(st.integers(0, len(rows) - 1), label="row")
    surplus = data.draw(st.lists(st.sampled_from(["x", "", "1"]), min_size=1, max_size=3))
    lines = csv_rows(rows, columns, zone=0, aware=False)
    lines[index] = [*lines[index], *surplus]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "failures.csv", list(columns), lines)
        expect_named(
            lambda: load_csv_tables(path, chunk_rows=chunk_rows),
            source=path,
            row=f"line {index + 2}",  # the header is line 1
            problem=f"has {len(columns) + len(surplus)} fields, the header {len(columns)}",
        )


def test_a_first_record_with_a_field_too_many_is_not_shifted(tmp_path: Path) -> None:
    """pandas reads `t,x,2026-11-30` under `task_type,created_at` as index `t` with the task
    type `x`: a valid row, silently wrong. The loader refuses it, naming the line."""
    path = tmp_path / "failures.csv"
    path.write_text("task_type,created_at\nt,x,2026-11-30\nt,2026-11-30\n", "utf-8")
    expect_named(
        lambda: load_csv_tables(path),
        source=path,
        row="line 2",
        problem="has 3 fields, the header 2",
    )


# -- Sentry: the service's JSON-lines export -----------------------------------------------------


@st.composite
def sentry_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events as the service's export writes them (its own converter), tags in any shape."""
    count = draw(st.integers(1, 12))
    events = []
    for i in range(count):
        when = START + timedelta(milliseconds=draw(st.integers(0, 3 * 86_400_000)))
        exc = draw(st.sampled_from(["BggTransientError", "BggUnavailable", "ReadTimeout"]))
        event = to_api_event(
            {
                "event_id": f"{i:032x}",
                "timestamp": when.isoformat().replace("+00:00", "Z"),
                "level": "error",
                "platform": "python",
                "environment": "test",
                "release": draw(st.sampled_from(["4f0c2a1", "9b7e3d5"])),
                "tags": {"endpoint_type": "admin", "user_type": "admin"},
                "exception": {"values": [{"type": exc, "value": f"BGG answered {500 + i}"}]},
            }
        )
        pairs = {t["key"]: t["value"] for t in event["tags"]}
        event["tags"] = draw(
            st.sampled_from(
                [
                    event["tags"],
                    pairs,
                    [[k, v] for k, v in pairs.items()],
                ]
            )
        )
        events.append(event)
    return events


def _without(*keys: str) -> Callable[[dict[str, Any]], str]:
    def corrupt(event: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in event.items() if k not in keys})

    return corrupt


def _with(key: str, value: object) -> Callable[[dict[str, Any]], str]:
    def corrupt(event: dict[str, Any]) -> str:
        return json.dumps({**event, key: value})

    return corrupt


#: (how a line is broken, the problem the loader must name).
SENTRY_CORRUPTIONS: tuple[tuple[Callable[[dict[str, Any]], str], str], ...] = (
    (lambda e: json.dumps(e)[: len(json.dumps(e)) // 2], "is not JSON"),
    (lambda e: "{oops", "is not JSON"),
    (lambda e: json.dumps([e]), "is a list, not an event object"),
    (lambda e: '"an event"', "is a str, not an event object"),
    (lambda e: "42", "is a int, not an event object"),
    (_without("eventID", "id", "event_id"), "has no event id (eventID, event_id or id)"),
    (_without("dateCreated"), "has no time (dateCreated, datetime or timestamp)"),
    (_with("dateCreated", ""), "has no time (dateCreated, datetime or timestamp)"),
    (_with("dateCreated", "yesterday"), "time 'yesterday' is not a timestamp"),
    (
        _with("dateCreated", "2026-13-40T10:00:00Z"),
        "time '2026-13-40T10:00:00Z' is not a timestamp",
    ),
    (_with("tags", 5), "tags of type int are not tags"),
    (_with("tags", "no tags here"), "tags 'no tags here' are not JSON or key=value pairs"),
    (_with("tags", [["level"]]), "tag ['level'] is neither [key, value] nor {key, value}"),
    (_with("tags", [7]), "tag 7 is neither [key, value] nor {key, value}"),
)


@SETTINGS
@given(
    events=sentry_events(),
    data=st.data(),
    corruption=st.sampled_from(SENTRY_CORRUPTIONS),
)
def test_a_corrupted_sentry_line_is_named(
    events: list[dict[str, Any]],
    data: st.DataObject,
    corruption: tuple[Callable[[dict[str, Any]], str], str],
) -> None:
    corrupt, problem = corruption
    index = data.draw(st.integers(0, len(events) - 1), label="event")
    lines = [
        (n == index, corrupt(e) if n == index else json.dumps(e)) for n, e in enumerate(events)
    ]
    # Blank lines anywhere (the loader skips them, but they still count as lines).
    blanks = data.draw(st.lists(st.integers(0, len(lines)), max_size=4), label="blanks")
    for position in sorted(blanks, reverse=True):
        lines.insert(position, (False, ""))
    number = 1 + [target for target, _ in lines].index(True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sentry.jsonl"
        path.write_text("".join(text + "\n" for _, text in lines), "utf-8")
        with pytest.raises(MalformedRowError) as caught:
            load_sentry(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line {number}: {problem}"), message
    assert "\n" not in message


def test_an_empty_event_id_falls_back_to_id(tmp_path: Path) -> None:
    """The service's export writes the id twice (`eventID`, `id`): one of them is enough."""
    event = to_api_event({"event_id": "a" * 32, "timestamp": "2026-11-30T10:00:00Z"})
    path = tmp_path / "sentry.jsonl"
    path.write_text(_with("eventID", "")(event) + "\n", "utf-8")
    assert load_sentry(path)["event_id"].tolist() == ["a" * 32]


# -- Sentry: a Discover CSV export ---------------------------------------------------------------

DISCOVER_CORRUPTIONS = (
    ("id", st.just(""), lambda v: "has no event id (eventID, event_id or id)"),
    ("timestamp", st.just(""), lambda v: "has no time (dateCreated, datetime or timestamp)"),
    ("timestamp", NOT_TIMES, lambda v: f"time {v!r} is not a timestamp"),
    (
        "tags",
        st.sampled_from(["nonsense", "[5]"]),
        lambda v: (
            "tags 'nonsense' are not JSON or key=value pairs"
            if v == "nonsense"
            else "tag 5 is neither [key, value] nor {key, value}"
        ),
    ),
    # A field more than the header (`csv.DictReader` would keep it under the key None).
    ("+", st.sampled_from(["x", ""]), lambda v: "has 7 fields, the header 6"),
)


@SETTINGS
@given(
    count=st.integers(1, 12),
    data=st.data(),
    corruption=st.sampled_from(DISCOVER_CORRUPTIONS),
)
def test_a_corrupted_discover_record_is_named(
    count: int,
    data: st.DataObject,
    corruption: tuple[str, st.SearchStrategy[str], Callable[[str], str]],
) -> None:
    column, values, problem = corruption
    header = ["id", "timestamp", "title", "release", "tags[user_type]", "tags"]
    rows = [
        [
            f"{i:032x}",
            f"2026-11-30T10:{i:02d}:00Z",
            f"BggUnavailable: {i}",
            "4f0c2a1",
            "admin",
            json.dumps({"endpoint_type": "admin"}),
        ]
        for i in range(count)
    ]
    index = data.draw(st.integers(0, count - 1), label="record")
    value = data.draw(values, label="value")
    if column == "+":
        rows[index].append(value)
    else:
        rows[index][header.index(column)] = value
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "discover.csv", header, rows)
        with pytest.raises(MalformedRowError) as caught:
            load_sentry(path)
    message = str(caught.value)
    assert message == f"{path} record {index + 1}: {problem(value)}"


# -- the chaos harness's events.jsonl ------------------------------------------------------------


@SETTINGS
@given(
    count=st.integers(1, 12),
    data=st.data(),
    corruption=st.sampled_from(
        [
            ("not JSON", "is not JSON"),
            ("no kind", "is not a harness event (needs kind and time)"),
            ("no time", "is not a harness event (needs kind and time)"),
            ("a list", "is not a harness event (needs kind and time)"),
            ("bad time", "time 'soon' is not a timestamp"),
            ("bad at", "at 'later' is not a timestamp"),
        ]
    ),
)
def test_a_corrupted_harness_event_is_named(
    count: int, data: st.DataObject, corruption: tuple[str, str]
) -> None:
    kind, problem = corruption
    events: list[Any] = [
        {
            "time": (START + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "t": i,
            "scenario": "s",
            "kind": "breaker_transition",
            "breaker": "BGG API",
            "from_state": "closed",
            "to_state": "open",
            "at": (START + timedelta(seconds=i - 0.5)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(count)
    ]
    index = data.draw(st.integers(0, count - 1), label="event")
    event = dict(events[index])
    lines = [json.dumps(e) for e in events]
    lines[index] = {
        "not JSON": lambda: json.dumps(event)[:-3],
        "no kind": lambda: json.dumps({k: v for k, v in event.items() if k != "kind"}),
        "no time": lambda: json.dumps({k: v for k, v in event.items() if k != "time"}),
        "a list": lambda: json.dumps([event]),
        "bad time": lambda: json.dumps({**event, "time": "soon"}),
        "bad at": lambda: json.dumps({**event, "at": "later"}),
    }[kind]()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        path.write_text("\n".join(lines) + "\n", "utf-8")
        with pytest.raises(MalformedRowError) as caught:
            load_chaos_events(path)
    assert str(caught.value).startswith(f"{path} line {index + 1}: {problem}")
