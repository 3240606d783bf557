"""`TaskTables`: the aggregate queries against a pandas oracle, on SQLite, on CSV exports and on
PostgreSQL, for any rows (empty, one, all resolved, from the future, NULL `resolved`), and the
errors for malformed rows and databases that are not the service's."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notebooks.reliability.csv_tables import load_csv_tables
from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.failures import analyse_failures
from notebooks.reliability.tables import QUANTILES, TaskTables, Window, open_tables
from tests.notebooks.strategies import NOW, failure_rows, oracle, run_rows, zone_text
from tests.notebooks.support import FAILURE_COLUMNS, RUN_COLUMNS, PostgresServer, SqliteDb

BUCKETS = st.sampled_from([1, 60, 3600, 86400])
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(tables: TaskTables, rows: list[dict[str, Any]], bucket: int) -> None:
    """Every aggregate equals the oracle's."""
    want = oracle(rows, bucket=bucket)
    overview = tables.overview()
    assert overview.failures == want["failures"]
    assert overview.unresolved == want["unresolved"]
    over_time = tables.failures_over_time(bucket)
    got = {
        (int(b.timestamp()), t): n
        for b, t, n in zip(
            over_time["bucket"], over_time["task_type"], over_time["failures"], strict=True
        )
    }
    assert got == want["over_time"]
    types = tables.error_types()
    assert dict(zip(types["error_type"], types["failures"], strict=True)) == want["error_types"]
    retries = tables.retry_counts()
    assert dict(zip(retries["retry_count"], retries["failures"], strict=True)) == want["retries"]
    backlog = tables.backlog()
    assert {
        (t, e): n
        for t, e, n in zip(
            backlog["task_type"], backlog["error_type"], backlog["failures"], strict=True
        )
    } == want["backlog"]
    assert list(tables.backlog_age_bins()["failures"]) == want["age_bins"]
    assert list(tables.resolution_bins()["failures"]) == want["resolution_bins"]
    quality = dict(zip(tables.quality()["check"], tables.quality()["rows"], strict=True))
    assert quality["created in the future"] == want["future"]
    games = tables.top_games(limit=10)
    got_games = {
        (None if pd.isna(g) else int(g)): n
        for g, n in zip(games["game_id"], games["failures"], strict=True)
    }
    want_games = {(None if pd.isna(g) else int(g)): n for g, n in want["games"].items()}
    assert got_games == want_games
    ttr = tables.resolution_quantiles()
    assert ttr.empty == (sum(want["resolution_bins"]) == 0)
    if not ttr.empty:
        assert list(ttr.index) == list(QUANTILES)
        assert ttr.is_monotonic_increasing
        assert ttr.iloc[0] >= -0.001


@SETTINGS
@given(rows=failure_rows(), bucket=BUCKETS)
def test_sqlite_matches_the_oracle(
    sqlite_db: Callable[[], SqliteDb], rows: list[dict[str, Any]], bucket: int
) -> None:
    db = sqlite_db()
    db.games(5)
    db.insert("background_task_failures", rows)
    with open_tables(db.url, now=NOW) as tables:
        check(tables, rows, bucket)


def write_csv(
    path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...], times: Callable[[Any], str]
) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            cells = []
            for column in columns:
                value = row.get(column)
                if value is None:
                    cells.append("")
                elif column.endswith("_at"):
                    cells.append(times(value))
                elif isinstance(value, bool):
                    cells.append("t" if value else "f")
                else:
                    cells.append(str(value))
            writer.writerow(cells)


@SETTINGS
@given(
    rows=failure_rows(),
    bucket=BUCKETS,
    aware=st.booleans(),
    zone=st.integers(-11, 12),
)
def test_csv_export_matches_the_oracle(
    tmp_path: Path, rows: list[dict[str, Any]], bucket: int, aware: bool, zone: int
) -> None:
    path = tmp_path / "failures.csv"
    write_csv(path, rows, FAILURE_COLUMNS, lambda v: zone_text(v, zone, aware=aware))
    with load_csv_tables(path, now=NOW) as tables:
        check(tables, rows, bucket)


def test_csv_with_mixed_naive_and_aware_times(tmp_path: Path) -> None:
    path = tmp_path / "failures.csv"
    path.write_text(
        "id,task_type,error_message,resolved,resolved_at,created_at\n"
        "1,thumbnail_download,a,t,2026-11-30T12:10:00Z,2026-11-30 12:00:00\n"
        "2,thumbnail_download,b,true,2026-11-30T14:30:00+02:00,2026-11-30T12:00:00+00:00\n"
        "3,thumbnail_download,c,\\N,,2026-11-30T13:00:00+01:00\n",
        encoding="utf-8",
    )
    with load_csv_tables(path, now="2026-11-30T13:00:00Z") as tables:
        assert tables.overview().failures == 3
        assert tables.overview().unresolved == 1
        assert list(tables.resolution_quantiles().loc[[0.0, 1.0]]) == [600.0, 1800.0]
        assert tables.backlog_age_quantiles().iloc[-1] == pytest.approx(3600.0, abs=0.01)


def test_an_all_null_resolved_at_column_works(tmp_path: Path) -> None:
    """Nothing resolved yet: pandas reads the column as object; the analysis still runs."""
    path = tmp_path / "failures.csv"
    path.write_text(
        "id,task_type,error_message,error_type,resolved,resolved_at,created_at\n"
        "1,thumbnail_download,x,ReadTimeout,f,,2026-11-30 11:00:00\n"
        "2,thumbnail_download,y,ReadTimeout,f,,2026-11-30 11:30:00\n",
        encoding="utf-8",
    )
    with load_csv_tables(path, now=NOW) as tables:
        rows = tables.read_failures(limit=None)
        assert str(rows["resolved_at"].dtype) == "datetime64[us, UTC]"
        analysis = analyse_failures(tables)
    assert analysis.resolution_quantiles.empty
    assert analysis.overview.unresolved == 2
    assert int(analysis.backlog_ages["failures"].sum()) == 2


def test_one_row_and_the_window(sqlite_db: Callable[[], SqliteDb]) -> None:
    db = sqlite_db()
    db.insert(
        "background_task_failures",
        [
            {
                "id": 1,
                "task_type": "thumbnail_download",
                "error_message": "x",
                "created_at": "2026-11-30 10:00:00",
                "resolved": 0,
            },
            {
                "id": 2,
                "task_type": "thumbnail_download",
                "error_message": "y",
                "created_at": "2026-11-30 12:00:00",
                "resolved": 0,
            },
        ],
    )
    with open_tables(db.url, since="2026-11-30T11:00Z", until="2026-11-30T13:00Z") as tables:
        assert tables.overview().failures == 1
        assert list(tables.read_failures()["id"]) == [2]
    with open_tables(db.url, since="2026-11-30T11:00+02:00") as tables:  # 09:00 UTC
        assert tables.overview().failures == 2


def test_an_inverted_window_is_refused() -> None:
    with pytest.raises(InputError, match="must be before until"):
        Window.parse("2026-11-30T12:00Z", "2026-11-30T11:00Z")


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("created_at", "yesterday", "created_at 'yesterday' is not a timestamp"),
        ("resolved_at", "soon", "resolved_at 'soon' is not a timestamp"),
        ("resolved", 7, "resolved 7 is not true or false"),
        ("retry_count", "three", "retry_count 'three' is not a whole number"),
        ("task_type", "", "task_type is empty"),
    ],
)
def test_a_malformed_row_is_named(
    sqlite_db: Callable[[], SqliteDb], column: str, value: object, problem: str
) -> None:
    db = sqlite_db()
    good = {
        "task_type": "thumbnail_download",
        "error_message": "x",
        "created_at": "2026-11-30 10:00:00",
        "resolved": 0,
    }
    db.insert("background_task_failures", [{"id": 1, **good}, {"id": 42, **good, column: value}])
    with pytest.raises(MalformedRowError) as caught:
        open_tables(db.url)
    assert "id=42" in str(caught.value)
    assert problem in str(caught.value)


def test_a_malformed_run_is_named(sqlite_db: Callable[[], SqliteDb]) -> None:
    db = sqlite_db()
    db.insert(
        "background_task_runs",
        [
            {
                "id": 9,
                "record_id": "r",
                "task_type": "t",
                "outcome": "success",
                "attempts": 1,
                "trigger": "initial",
                "started_at": "later",
                "finished_at": "2026-11-30 10:00:01",
                "duration_ms": 1.0,
            },
        ],
    )
    with pytest.raises(MalformedRowError, match=r"id=9: started_at 'later' is not a timestamp"):
        open_tables(db.url)


def test_a_database_without_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE something (id INTEGER)")
    with pytest.raises(InputError, match="has no background_task_failures table: expected"):
        open_tables(f"sqlite+aiosqlite:///{path}")


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(InputError, match="no such SQLite file"):
        open_tables(f"sqlite+aiosqlite:///{path}")
    assert not path.exists()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "sqlite+aiosqlite://"])
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(InputError):
        open_tables(url)


def test_runs_and_success(sqlite_db: Callable[[], SqliteDb]) -> None:
    db = sqlite_db()
    db.insert(
        "background_task_failures",
        [
            {
                "id": 1,
                "task_type": "thumbnail_download",
                "error_message": "x",
                "created_at": "2026-11-30 10:00:00",
                "resolved": 1,
                "resolved_at": "2026-11-30 10:00:05",
            },
        ],
    )
    base = {
        "task_type": "thumbnail_download",
        "attempts": 1,
        "duration_ms": 1.0,
        "finished_at": "2026-11-30 10:00:01",
    }
    db.insert(
        "background_task_runs",
        [
            {
                **base,
                "id": 1,
                "record_id": "a",
                "outcome": "failure",
                "trigger": "initial",
                "failure_id": 1,
                "started_at": "2026-11-30 10:00:00",
            },
            {
                **base,
                "id": 2,
                "record_id": "b",
                "outcome": "success",
                "trigger": "auto_retry",
                "failure_id": 1,
                "started_at": "2026-11-30 10:00:04",
            },
            {
                **base,
                "id": 3,
                "record_id": "c",
                "outcome": "success",
                "trigger": "initial",
                "started_at": "2026-11-30 10:20:00",
            },
        ],
    )
    with open_tables(db.url) as tables:
        analysis = analyse_failures(tables, bucket="1h")
    total = analysis.success_total
    assert (total.tasks, total.first_run_successes, total.recovered) == (2, 1, 1)
    assert total.success_rate == 0.5
    assert total.eventual_success_rate == 1.0
    assert total.meets_target is False
    assert list(analysis.success["runs"]) == [2]


def test_a_database_without_runs(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("task_type,created_at\nthumbnail_download,2026-11-30 10:00:00\n", "utf-8")
    with load_csv_tables(path) as tables:
        assert tables.overview().runs is None
        assert tables.run_outcomes(60).empty
        assert analyse_failures(tables).success_total.success_rate is None


@pytest.mark.postgres
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=failure_rows(max_size=20), runs=run_rows(max_size=10), bucket=BUCKETS)
def test_postgresql_matches_the_oracle(
    postgres_tables_db: tuple[PostgresServer, str],
    rows: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    bucket: int,
) -> None:
    server, url = postgres_tables_db
    server.truncate(url)
    server.insert(
        url,
        "boardgames",
        [
            {
                "id": i,
                "bgg_id": i,
                "title": f"G{i}",
                "categories": "[]",
                "mechanics": "[]",
                "designers": "[]",
                "publishers": "[]",
                "created_at": NOW.replace(tzinfo=None),
                "updated_at": NOW.replace(tzinfo=None),
            }
            for i in range(1, 6)
        ],
    )
    server.insert(url, "background_task_failures", rows)
    server.insert(url, "background_task_runs", runs)
    with open_tables(url, now=NOW) as tables:
        check(tables, rows, bucket)
        outcomes = tables.run_outcomes(bucket)
        assert int(outcomes["runs"].sum()) == len(runs)
        # The counts the triggers keep agree with the table.
        assert tables.overview().failures == len(rows)


@pytest.fixture(scope="module")
def postgres_tables_db(postgres: PostgresServer) -> tuple[PostgresServer, str]:
    return postgres, postgres.database()


def test_columns_constants_cover_the_schema(sqlite_db: Callable[[], SqliteDb]) -> None:
    db = sqlite_db()
    with sqlite3.connect(db.path) as conn:
        failures = [r[1] for r in conn.execute("PRAGMA table_info(background_task_failures)")]
        runs = [r[1] for r in conn.execute("PRAGMA table_info(background_task_runs)")]
    assert set(failures) == set(FAILURE_COLUMNS)
    assert set(runs) == set(RUN_COLUMNS)


# -- message_groups: the rows behind the message patterns ---------------------------------------

#: (error_type, error_message, created_at): three distinct (type, message) pairs in the window,
#: a fourth only before it.
MESSAGE_ROWS = (
    ("ReadTimeout", "timed out after 5 s", "2026-11-30 10:00:00"),
    ("ReadTimeout", "timed out after 5 s", "2026-11-30 10:10:00"),
    ("ReadTimeout", "timed out after 7 s", "2026-11-30 10:20:00"),
    (None, "boom", "2026-11-30 10:30:00"),
    (None, "boom", "2026-11-30 10:40:00"),
    ("ConnectError", "refused", "2026-11-30 08:00:00"),
)


def message_failures(count: int | None = None) -> list[dict[str, Any]]:
    rows = MESSAGE_ROWS if count is None else [MESSAGE_ROWS[i % 5] for i in range(count)]
    return [
        {
            "id": i,
            "task_type": "thumbnail_download",
            "error_type": error_type,
            "error_message": message,
            "created_at": created,
            "resolved": False,
        }
        for i, (error_type, message, created) in enumerate(rows, 1)
    ]


def groups_of(tables: TaskTables) -> tuple[dict[tuple[str | None, str], int], float]:
    groups, fraction = tables.message_groups()
    assert list(groups.columns) == ["error_type", "error_message", "failures"]
    assert str(groups["failures"].dtype) == "int64"
    counted = {
        (None if pd.isna(t) else str(t), str(m)): int(n)
        for t, m, n in zip(
            groups["error_type"], groups["error_message"], groups["failures"], strict=True
        )
    }
    return counted, fraction


EXPECTED_GROUPS = {
    ("ReadTimeout", "timed out after 5 s"): 2,
    ("ReadTimeout", "timed out after 7 s"): 1,
    (None, "boom"): 2,
}


def test_message_groups_count_each_distinct_message(sqlite_db: Callable[[], SqliteDb]) -> None:
    db = sqlite_db()
    with open_tables(db.url) as tables:
        assert groups_of(tables) == ({}, 1.0)  # an empty table
    db.insert("background_task_failures", message_failures())
    with open_tables(db.url) as tables:
        counted, fraction = groups_of(tables)
    assert fraction == 1.0
    assert counted == {**EXPECTED_GROUPS, ("ConnectError", "refused"): 1}
    with open_tables(db.url, since="2026-11-30T09:00Z") as tables:
        assert groups_of(tables) == (EXPECTED_GROUPS, 1.0)


def test_message_groups_sample_a_large_table(
    sqlite_db: Callable[[], SqliteDb], monkeypatch: pytest.MonkeyPatch
) -> None:
    from notebooks.reliability.queries import counts as tables_module

    monkeypatch.setattr(tables_module, "EXACT_MESSAGE_ROWS", 40)
    monkeypatch.setattr(tables_module, "MESSAGE_SAMPLE_ROWS", 25)
    db = sqlite_db()
    db.insert("background_task_failures", message_failures(40))
    with open_tables(db.url) as tables:
        assert groups_of(tables)[1] == 1.0  # 40 rows: still counted exactly
    db.insert("background_task_failures", [{**r, "id": r["id"] + 40} for r in message_failures(60)])
    with open_tables(db.url) as tables:
        counted, fraction = groups_of(tables)
    assert fraction == pytest.approx(0.25)  # 25 of 100 rows, by the share of the sample
    assert set(counted) <= set(EXPECTED_GROUPS)
    assert sum(counted.values()) <= 100


@pytest.mark.postgres
def test_message_groups_on_postgresql(
    postgres_tables_db: tuple[PostgresServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from notebooks.reliability.queries import counts as tables_module

    server, url = postgres_tables_db
    server.truncate(url)
    server.insert(url, "background_task_failures", message_failures())
    with open_tables(url, since="2026-11-30T09:00Z") as tables:
        assert groups_of(tables) == (EXPECTED_GROUPS, 1.0)
    monkeypatch.setattr(tables_module, "EXACT_MESSAGE_ROWS", 3)
    monkeypatch.setattr(tables_module, "MESSAGE_SAMPLE_ROWS", 3)
    with open_tables(url) as tables:
        counted, fraction = groups_of(tables)  # TABLESAMPLE SYSTEM: whole pages, or none
    assert fraction == pytest.approx(0.5)
    assert set(counted) <= {*EXPECTED_GROUPS, ("ConnectError", "refused")}
