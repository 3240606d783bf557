"""The pieces that make the notebook pages read as reports: the "latest" defaults, a FAIL's
explanation, bucket widths and time axes, rates not extrapolated, clean tables."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from notebooks.dataset import LATEST, REPORTS_ENV, latest, resolve_latest
from notebooks.execute import html_of
from notebooks.execute import run as run_notebook
from notebooks.reliability import show
from notebooks.reliability.chaos import load_chaos_events
from notebooks.reliability.failures import SuccessSummary
from notebooks.reliability.metrics import (
    Context,
    display_table,
    drill_faults,
    explain,
    success_metrics,
    task_verdict,
)
from notebooks.reliability.plots import time_format
from notebooks.reliability.sentry import MIN_RATE_SPAN_S, events_per_hour
from notebooks.reliability.testcount import TestCount
from notebooks.reliability.timeutil import choose_bucket

DRILL = [
    {"time": "2026-12-06T11:28:40+00:00", "t": 0, "scenario": "generated", "kind": "fault",
     "fault": "cdn-503", "on": True},
    {"time": "2026-12-06T11:28:45+00:00", "t": 5, "scenario": "generated", "kind": "fault",
     "fault": "cdn-503", "on": False},
    {"time": "2026-12-06T11:28:50+00:00", "t": 10, "scenario": "generated", "kind": "fault",
     "fault": "bgg-503", "on": True},
]  # fmt: skip


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def _reports(root: Path) -> Path:
    """A reports folder after `nox -s notebooks`, two `nox -s chaos` runs and `nox -s load`."""
    reports = root / "reports"
    for run in ("20261201T000000Z-seed1-1-aaaa", "20261202T000000Z-seed2-2-bbbb"):
        folder = reports / "chaos" / run
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"scenarios": []}), "utf-8")
        (folder / "journal.json").write_text(json.dumps({"journals": []}), "utf-8")
        _jsonl(folder / "events.jsonl", DRILL)
    (reports / "chaos" / "latest").symlink_to("20261202T000000Z-seed2-2-bbbb")
    load = reports / "load"
    load.mkdir()
    (load / "summary.json").write_text(json.dumps({"thresholds": [], "error_rate": 0.0}))
    data = reports / "notebooks" / "data"
    data.mkdir(parents=True)
    with sqlite3.connect(data / "bgg.db") as db:
        db.execute("CREATE TABLE t (x)")
    _jsonl(data / "sentry.jsonl", [{"eventID": "a", "dateCreated": "2026-12-06T00:00:00Z"}])
    _jsonl(data / "events.jsonl", DRILL)
    (data / "tests.json").write_text(json.dumps({"collected": 3}), "utf-8")
    return reports


def test_latest_finds_the_newest_runs_of_each_kind(tmp_path: Path) -> None:
    reports = _reports(tmp_path)
    found = latest(reports).parameters()
    chaos = reports / "chaos" / "latest"
    data = reports / "notebooks" / "data"
    assert found["chaos_summary"] == str(chaos / "summary.json")  # the latest run, not the first
    assert found["chaos_journal"] == str(chaos / "journal.json")
    assert found["chaos_events"] == str(chaos / "events.jsonl")
    assert found["load_dir"] == str(reports / "load")
    assert found["database_url"] == f"sqlite+aiosqlite:///{(data / 'bgg.db').resolve()}"
    assert found["sentry_paths"] == [str(data / "sentry.jsonl")]
    assert found["events_path"] == str(data / "events.jsonl")  # the data set's own events
    assert found["tests_path"] == str(data / "tests.json")


def test_parameters_left_at_latest_read_the_reports_folder_others_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = _reports(tmp_path)
    monkeypatch.setenv(REPORTS_ENV, str(reports))
    summary, load_dir, sentry = resolve_latest(
        chaos_summary=LATEST, load_dir="elsewhere/load", sentry_paths=[LATEST]
    )
    assert summary == str(reports / "chaos" / "latest" / "summary.json")
    assert load_dir == "elsewhere/load"
    assert sentry == [str(reports / "notebooks" / "data" / "sentry.jsonl")]


def test_latest_without_any_run_is_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REPORTS_ENV, str(tmp_path / "none"))
    assert resolve_latest(database_url=LATEST, sentry_paths=[LATEST], events_path=LATEST) == (
        "",
        [],
        "",
    )
    # Only a chaos run: its events stand in for the data set's.
    reports = _reports(tmp_path)
    for folder in ("notebooks", "load"):
        for path in sorted((reports / folder).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    monkeypatch.setenv(REPORTS_ENV, str(reports))
    (events,) = resolve_latest(events_path=LATEST)
    assert events == str(reports / "chaos" / "latest" / "events.jsonl")


def _drill_events(tmp_path: Path, scenario: str = "generated") -> pd.DataFrame:
    rows = [{**r, "scenario": scenario} for r in DRILL]
    return load_chaos_events(_jsonl(tmp_path / "events.jsonl", rows))


def test_a_drill_fail_says_it_is_a_drill_in_its_own_row(tmp_path: Path) -> None:
    success = SuccessSummary(
        tasks=50, first_run_successes=37, recovered=9, retries=10, retry_successes=9
    )
    faults = drill_faults(_drill_events(tmp_path))
    assert faults == ("cdn-503", "bgg-503")
    table = display_table(success_metrics(success=success), Context(faults, success))
    row = table[table["metric"] == "background task success"].iloc[0]
    assert row["result"] == "FAIL"
    assert "outage drill" in row["why"] and "cdn-503, bgg-503" in row["why"]
    assert "92% succeeded in the end" in row["why"]
    # What passed, or was not measured, needs no explanation.
    assert set(table.loc[table["result"] != "FAIL", "why"]) == {""}
    assert set(table.loc[table["result"] != "FAIL", "result"]) == {"not measured"}


def test_a_fail_outside_a_drill_is_not_excused(tmp_path: Path) -> None:
    assert drill_faults(_drill_events(tmp_path, scenario="bgg_outage")) == ()  # a chaos run's
    assert drill_faults(None) == ()
    success = SuccessSummary(tasks=10, first_run_successes=8, recovered=0, retries=0,
                             retry_successes=0)  # fmt: skip
    verdict = task_verdict(success, target=0.95, context=Context(success=success))
    assert list(verdict["metric"]) == ["background task success"]
    why = verdict["why"].iloc[0]
    assert "drill" not in why and "2 first runs failed" in why
    passing = task_verdict(success, target=0.5)
    assert passing["result"].iloc[0] == "pass" and passing["why"].iloc[0] == ""
    tests = TestCount(source="junit", collected=3, by_area={}, passed=2, failed=1, errors=0,
                      skipped=0)  # fmt: skip
    row = display_table(success_metrics(tests=tests), Context(tests=tests))
    assert "1 failed" in row.loc[row["metric"] == "tests", "why"].iloc[0]
    assert explain({"metric": "error rate", "passed": True}) == ""


@pytest.mark.parametrize(
    ("span", "width"),
    [
        (timedelta(seconds=28), 2),  # the small drill: 14 bars, not 28 one-second slivers
        (timedelta(minutes=10), 30),
        (timedelta(hours=3), 600),
        (timedelta(days=1), 7200),
        (timedelta(days=30), 172800),
    ],
)
def test_auto_buckets_come_from_the_span(span: timedelta, width: int) -> None:
    start = datetime(2026, 12, 6, 11, 28, tzinfo=UTC)
    assert choose_bucket(start, start + span) == width
    assert span.total_seconds() / width <= 20 or width == 604800


def test_time_axes_read_whole_times_and_say_the_date() -> None:
    start = datetime(2026, 12, 6, 11, 28, 40, tzinfo=UTC)
    assert time_format(start, start + timedelta(seconds=30)) == (
        "%H:%M:%S",
        "time (UTC) on 2026-12-06",
    )
    assert time_format(start, start + timedelta(hours=2))[0] == "%H:%M"
    assert time_format(start, start + timedelta(days=2)) == ("%m-%d %H:%M", "time (UTC)")
    assert time_format(start, start + timedelta(days=20)) == ("%Y-%m-%d", "date (UTC)")


def test_no_rate_per_hour_from_a_few_seconds() -> None:
    assert math.isnan(events_per_hour(8, 1.0))
    assert math.isnan(events_per_hour(8, MIN_RATE_SPAN_S - 1))
    assert events_per_hour(30, 1800.0) == 60.0


def test_tables_have_no_index_and_one_way_to_say_none() -> None:
    frame = pd.DataFrame(
        {
            "name": ["a", None, "n/a", "c"],
            "value": [1.23456789, math.nan, 3.0, None],
            "when": [pd.Timestamp("2026-12-06", tz="UTC"), pd.NaT, pd.NaT, pd.NaT],
        },
        index=[10, 11, 12, 13],
    )
    cleaned = show.clean(frame)
    assert list(cleaned["name"]) == ["a", show.NONE, show.NONE, "c"]
    assert list(cleaned["value"]) == ["1.235", show.NONE, "3", show.NONE]
    html = show.table(frame).data
    assert "<th>10</th>" not in html and "<tbody>\n    <tr>\n      <th>" not in html
    for word in ("NaN", "None", "NaT", "n/a"):
        assert f">{word}<" not in html
    long_text = pd.DataFrame({"message": ["x" * 120]})
    assert "x" * 120 in show.table(long_text).data  # never cut short with "..."


def test_mttd_from_the_data_set_names_its_slowest_fault() -> None:
    detection = pd.DataFrame(
        {
            "scenario": ["generated", "generated"],
            "fault": ["cdn-503", "bgg-503"],
            "mttd_open_s": [1.5, 2.3],
            "mttd_alert_s": [2.6, None],
        }
    )
    rows = {r["metric"]: r for r in success_metrics(detection=detection).to_dict("records")}
    assert rows["MTTD: fault to breaker open"]["source"] == "data set events (worst: fault bgg-503)"
    assert rows["MTTD: fault to alert"]["source"] == "data set events (worst: fault cdn-503)"


def test_the_page_has_no_code_and_fetches_nothing() -> None:
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    code = nbformat.v4.new_code_cell("import secret_module\nshow.show(frame)")  # type: ignore[no-untyped-call]
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="the result\n")]  # type: ignore[no-untyped-call]
    code.execution_count = 1
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title\n\n## Verdict"), code]  # type: ignore[no-untyped-call]

    page = html_of(notebook)

    assert "the result" in page and "Verdict" in page
    assert "secret_module" not in page and "In&nbsp;[" not in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # no require.js, no MathJax


@pytest.mark.slow
def test_left_at_its_defaults_the_report_reads_the_latest_chaos_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `nox -s lab` opens it right after `nox -s chaos`: no parameter set."""
    runs = tmp_path / "reports" / "chaos"
    for seed, mttd in ((1, 9.0), (2, 0.238)):  # the older run must not be read
        run = runs / f"2026120{seed}T000000Z-seed{seed}-1-aaaa"
        run.mkdir(parents=True)
        scenario = {"name": "bgg_outage", "scenario": "bgg_outage", "verdict": "passed",
                    "held": 15, "total": 15, "figures": {"mttd_open_s": mttd}}  # fmt: skip
        (run / "summary.json").write_text(json.dumps({"scenarios": [scenario]}), "utf-8")
    (runs / "latest").symlink_to("20261202T000000Z-seed2-1-aaaa")
    monkeypatch.setenv(REPORTS_ENV, str(tmp_path / "reports"))
    out = tmp_path / "out"

    run_notebook("reliability_report", {"output_dir": str(out)}, out, timeout=120)

    rows = {m["metric"]: m for m in json.loads((out / "success_metrics.json").read_text())}
    assert rows["chaos hypotheses"]["measured"] == "15/15 held"
    assert rows["MTTD: fault to breaker open"]["value"] == 0.238
    assert rows["background task success"]["value"] is None  # nothing generated: not available
