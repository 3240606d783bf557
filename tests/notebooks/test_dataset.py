"""Data sources recognised by what the files hold."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from notebooks import dataset
from notebooks.reliability.errors import InputError
from tests.notebooks.support import FIXTURES


def test_each_kind_of_file(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "anything.bin")
    files = {
        "f.csv": "id,task_type,created_at\n",
        "r.csv": "id,outcome,started_at\n",
        "discover.csv": "id,timestamp,title\n",
        "locust_stats.csv": "Type,Name,Request Count,Failure Count\n",
        "events.jsonl": '{"time": "2026-11-30T00:00:00Z", "kind": "fault"}\n',
        "sentry.jsonl": '{"eventID": "a", "dateCreated": "2026-11-30T00:00:00Z"}\n',
        "journal.json": json.dumps({"journals": []}),
        "summary.json": json.dumps({"scenarios": []}),
        "load.json": json.dumps({"thresholds": [], "error_rate": 0.0}),
        "tests.json": json.dumps({"collected": 3}),
        "junit.xml": "<testsuites/>",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, "utf-8")
    kinds = {p.name: dataset.classify(p) for p in sorted(tmp_path.iterdir())}
    assert kinds == {
        "anything.bin": "database",
        "f.csv": "failures_csv",
        "r.csv": "runs_csv",
        "discover.csv": "sentry",
        "locust_stats.csv": "load",
        "events.jsonl": "chaos_events",
        "sentry.jsonl": "sentry",
        "journal.json": "chaos_journal",
        "summary.json": "chaos_summary",
        "load.json": "load",
        "tests.json": "tests",
        "junit.xml": "tests",
    }


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("hello", "utf-8")
    with pytest.raises(InputError, match="cannot tell what it holds: expected a SQLite"):
        dataset.classify(tmp_path / "notes.md")
    (tmp_path / "x.json").write_text('{"a": 1}', "utf-8")
    with pytest.raises(InputError, match="a JSON object of no known kind"):
        dataset.classify(tmp_path / "x.json")
    (tmp_path / "empty.csv").write_text("", "utf-8")
    with pytest.raises(InputError, match="is empty"):
        dataset.classify(tmp_path / "empty.csv")
    with pytest.raises(InputError, match="no such file or folder"):
        dataset.from_paths([str(tmp_path / "nope")])


def test_folders_are_searched_one_level_deep(tmp_path: Path) -> None:
    (tmp_path / "sentry").mkdir()
    for path in (FIXTURES / "sentry").iterdir():
        shutil.copy(path, tmp_path / "sentry" / path.name)
    (tmp_path / "chaos").mkdir()
    shutil.copy(FIXTURES / "chaostoolkit" / "journal-ok.json", tmp_path / "chaos" / "journal.json")
    with sqlite3.connect(tmp_path / "bgg.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    data = dataset.from_paths([str(tmp_path)])
    assert len(data.sentry_paths) == 4
    assert data.chaos_journal.endswith("journal.json")
    assert data.database_url.startswith("sqlite+aiosqlite:///")
    assert data.parameters()["events_path"] == ""
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="holds nothing the notebooks can read"):
        dataset.from_paths([str(tmp_path / "empty_dir")])


def test_reports_fill_the_gaps(tmp_path: Path) -> None:
    (tmp_path / "chaos").mkdir()
    (tmp_path / "chaos" / "summary.json").write_text('{"scenarios": []}', "utf-8")
    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "summary.json").write_text("{}", "utf-8")
    data = dataset.DataSet(chaos_summary="mine.json")
    dataset.reports_dir(data, tmp_path)
    assert data.chaos_summary == "mine.json"
    assert data.load_dir == str(tmp_path / "load")


def test_a_folder_of_chaos_runs_means_its_latest(tmp_path: Path) -> None:
    """A folder per run (`reports/chaos/<run>/`): only the run `latest` names is read, whether
    given as `reports/`, as `reports/chaos` or found as the default, never a mix of runs."""
    chaos = tmp_path / "reports" / "chaos"
    named, other = "20261201T000000Z-seed1-1-aaaa", "20261201T000001Z-seed1-2-bbbb"
    for run in (named, other):
        (chaos / run).mkdir(parents=True)
        (chaos / run / "summary.json").write_text('{"scenarios": []}', "utf-8")
    event = '{"time": "2026-11-30T00:00:00Z", "kind": "fault"}\n'
    (chaos / other / "events.jsonl").write_text(event, "utf-8")
    (chaos / "latest").symlink_to(named)  # not the last in name order: latest is what counts
    latest = chaos / "latest"
    for given in (tmp_path / "reports", chaos):
        data = dataset.from_paths([str(given)])
        assert data.chaos_summary == str(latest / "summary.json"), given
        assert data.chaos_events == "", "no events from another run"
    data = dataset.DataSet()
    dataset.reports_dir(data, tmp_path / "reports")
    assert data.chaos_summary == str(latest / "summary.json") and data.chaos_events == ""
