"""report.html: what a person reads after a chaos run, built from results made here (no run).

The page is made the way a run makes it (`chaos.report.write` from `ScenarioResult`s and the
run's `events.jsonl`), then read back as text. The slow tests in test_broken_service.py open
the pages of real runs in Chromium.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chaos import html_report, report, timeline, ui
from chaos.checker import JobCheck, TaskCheck
from chaos.engine import Judgement, ScenarioResult
from chaos.scenarios import load

META = {
    "seed": 7,
    "started": "2026-12-06T11:28:21.793850+00:00",
    "duration_s": 43.0,
    "versions": {"python": "3.11.7", "harness": "h 1.0", "service": "0.1.0",
                 "packages": {"fastapi": "0.165.0"}},
    "git": {"commit": "13a2f47e912367c86f5b7a5decfc3ebf8607b1b1", "dirty": False},
    "options": {"workers": 1, "database": "sqlite (temporary)", "postgresql_too": True,
                "target": None, "service_env_overrides": {}},
    "interrupted": False,
}  # fmt: skip


def _judgement(name: str, promise: str, expected: str, observed: Any, met: bool = True,
               phase: str = "method") -> Judgement:  # fmt: skip
    return Judgement(name, phase, promise, expected, observed, met)


def _tasks(lost: list[int] | None = None) -> TaskCheck:
    check = TaskCheck(attempted=11, succeeded=2, recorded_failure=9 - len(lost or []))
    check.lost = list(lost or [])
    check.jobs = JobCheck(expected=11, done=2, failed_recorded=9)
    return check


def _outage(backend: str, public_error_rate: float) -> ScenarioResult:
    scenario = load("database_outage")
    name = scenario.name if backend == "sqlite" else f"{scenario.name}[postgresql]"
    result = ScenarioResult(name, scenario, backend, duration_s=3.6)
    result.judgements = [
        _judgement("public-api-answers", "the public catalogue answers 200", "all_ok == True",
                   True, phase="before"),
        _judgement("write-answers-503",
                   "a write during the outage answers 503 database_unavailable, never 500",
                   "status == 503", 503),
    ]  # fmt: skip
    result.figures = {"public_error_rate": public_error_rate, "public_p99_ms": 80.5}
    result.tasks = _tasks()
    return result


def _outage_events(name: str, seed: int) -> list[dict[str, Any]]:
    """What a run writes for the PostgreSQL outage: the fault, the public API failing
    under it, the breaker seen and a transition the service timed itself."""

    def at(t: float, kind: str, **fields: Any) -> dict[str, Any]:
        wall = f"2026-12-06T11:28:{20 + t:09.6f}+00:00"
        return {"time": wall, "t": 100 + t, "scenario": name, "kind": kind, **fields}

    return [
        at(0.0, "scenario_start", seed=seed, run_seed=7, backend="postgresql"),
        at(0.1, "breaker_state", breaker="BGG API", service=0, state="closed"),
        at(1.0, "fault", fault="database-down", on=True),
        *[
            at(1.0 + i / 10, "public_call", service=0, status=503, latency_ms=20.0)
            for i in range(8)
        ],
        at(1.5, "import", bgg_id=1, game_id=None, status=503, latency_ms=30.0),
        # Seen at 3.0, but the service says it opened at 2.0.
        at(
            3.0,
            "breaker_transition",
            breaker="BGG API",
            service=0,
            from_state="closed",
            to_state="open",
            at="2026-12-06T11:28:22.000000Z",
        ),
        at(3.5, "fault", fault="database-down", on=False),
        at(4.0, "public_call", service=0, status=200, latency_ms=12.0),
        at(4.5, "scenario_end", verdict="passed", reason=""),
    ]


def _write(folder: Path, results: list[ScenarioResult], events: list[dict[str, Any]]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "logs").mkdir(exist_ok=True)
    for result in results:
        (folder / "logs" / f"service-{result.name}-0.log").write_text("started\n")
    page = report.write(folder, results, META, report.exit_code(results))
    assert page == folder / "report.html"
    return page.read_text(encoding="utf-8")


def _text(html: str) -> str:
    """The page's words, roughly as a reader sees them (tags and the SVG left out)."""
    html = re.sub(r"<svg.*?</svg>", " ", html, flags=re.S)
    html = re.sub(r"<(style|head)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


@pytest.fixture(scope="module")
def passed_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two database outages that passed, on SQLite and PostgreSQL (which lost its reads)."""
    results = [_outage("sqlite", 0.0), _outage("postgresql", 0.862)]
    folder = tmp_path_factory.mktemp("passed") / "run"
    return _write(folder, results, _outage_events("database_outage[postgresql]", 9))


def test_the_verdict_comes_first_with_what_it_means_and_how_to_replay(passed_page: str) -> None:
    text = _text(passed_page)
    assert text.index("Exit 0: passed") < text.index("database_outage")
    assert "2 of 2 scenarios passed" in text
    assert html_report.EXIT_MEANINGS[0] in text
    assert "python -m chaos run database_outage --seed 7" in text, "one scenario name, once"
    assert "13a2f47e912367c86f5b7a5decfc3ebf8607b1b1" in text and "took 43.0 s" in text


def test_a_scenario_run_on_two_backends_is_told_apart(passed_page: str) -> None:
    headings = re.findall(r"<h2>(.*?)</h2>", passed_page, flags=re.S)
    words = [_text(h).strip() for h in headings]
    assert words == ["database_outage on SQLite passed", "database_outage on PostgreSQL passed"]


def test_hypotheses_read_as_sentences_with_measured_value_and_target(passed_page: str) -> None:
    text = _text(passed_page)
    assert "A write during the outage answers 503 database_unavailable, never 500" in text
    assert "under the fault 503 503 ✓ held" in text
    assert "The public catalogue answers 200 before the fault yes yes ✓ held" in text
    assert "MTTD" not in text and "rej p99" not in text and "0unexp" not in text


def test_an_expected_public_error_rate_is_explained_where_it_shows(passed_page: str) -> None:
    sqlite, postgresql = passed_page.split('id="scenario-database-outage-postgresql"')
    note = "Looks alarming, but passed: The public API failed 86.2 % of its samples"
    assert note in _text(postgresql)
    assert "Looks alarming" not in _text(sqlite), "0 % errors needs no excuse"
    assert "public API errors under the fault 86.2 %" in _text(postgresql)


def test_the_lost_work_check_and_files_of_each_scenario(passed_page: str) -> None:
    text = _text(passed_page)
    assert "Nothing lost, nothing done twice." in text
    assert "11 thumbnail downloads started: 2 succeeded, 9 failed and were recorded" in text
    assert "Failed downloads are not lost work" in text
    assert 'href="logs/service-database_outage%5Bpostgresql%5D-0.log"' in passed_page
    assert 'href="journal-database_outage%5Bpostgresql%5D.json"' in passed_page
    assert 'href="logs/service-database_outage-0.log"' in passed_page
    # The scenario's own seed, from its events, replays it alone.
    assert "python -m chaos run database_outage --seed 9" in text


def test_the_timeline_is_inline_svg_and_the_page_needs_nothing_from_elsewhere(
    passed_page: str,
) -> None:
    assert passed_page.count("<svg") == 1, "the PostgreSQL run has events; SQLite's has none"
    assert "<?xml" not in passed_page and "<!DOCTYPE svg" not in passed_page
    assert "<script" not in passed_page and "<link" not in passed_page
    outside = re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", passed_page)
    assert outside == [], "no file, font or script from elsewhere"
    svg = passed_page[passed_page.index("<svg") :]
    assert "fault database-down" in svg and "breaker BGG API" in svg


def test_the_timeline_places_breaker_changes_when_the_service_made_them() -> None:
    line = timeline.timeline(_outage_events("x", 1))
    assert line.faults == [("database-down", 1.0, 3.5)]
    ((_, closed), (opened, open_)) = line.breakers["BGG API"]
    assert (closed, open_) == ("closed", "open") and opened == pytest.approx(2.0)
    assert [ok for _, _, ok in line.public] == [False] * 8 + [True]
    assert line.imports == [(1.5, 30.0, 503)]


def test_a_fault_switched_off_under_another_name_ends_and_a_kill_is_a_moment() -> None:
    events = [
        {"t": 0.0, "kind": "scenario_start"},
        {"t": 1.0, "kind": "fault", "fault": "sigterm", "on": True},
        {"t": 2.0, "kind": "fault", "fault": "restart", "on": False},
        {"t": 3.0, "kind": "fault", "fault": "sigkill", "on": True},
        {"t": 4.0, "kind": "fault_rules", "upstream": "cdn", "rules": [{"name": "slow-404"}]},
        {"t": 5.0, "kind": "fault_rules", "upstream": "cdn", "rules": []},
    ]
    line = timeline.timeline(events)
    assert line.faults == [("sigterm", 1.0, 2.0), ("sigkill", 3.0, None)]
    assert line.rules == [("CDN: slow-404", 4.0, 5.0)]
    assert "sigkill (at that moment)" in timeline.svg(line, salt="t")


def test_a_deviated_run_names_the_broken_promise(tmp_path: Path) -> None:
    result = ScenarioResult("bgg_outage", load("bgg_outage"), "sqlite", verdict="deviated",
                            reason="breaker-opens-after-fail-max (method)")  # fmt: skip
    result.judgements = [
        _judgement("breaker-opens-after-fail-max",
                   "the breaker opens after exactly 5 failed upstream requests",
                   "upstream_requests_at_open == 5", None, met=False),
        _judgement("rejections-fast", "rejections while open: p99 < 50 ms",
                   "p99_ms <= 50.0 ms", 13.99),
    ]  # fmt: skip
    result.tasks = _tasks()
    result.figures["load_average_1m"] = 99.0
    text = _text(_write(tmp_path / "run", [result], []))
    assert text.index("Exit 1: deviated") < text.index("bgg_outage on SQLite")
    assert "0 of 1 scenario passed" in text
    # Said at the top, in words, before the scenario's own section.
    what_failed = (
        "What failed bgg_outage on SQLite : The breaker opens after exactly 5 failed upstream "
        "requests (under the fault): measured not measured, target 5"
    )
    assert text.index(what_failed) < text.index("Hypotheses (1 of 2 held)")
    assert "The machine was busy: its load was 99" in text
    assert "Deviated: breaker-opens-after-fail-max (method)" in text
    assert (
        "The breaker opens after exactly 5 failed upstream requests under the fault "
        "not measured 5 ✗ failed"
    ) in text
    assert "14 ms at most 50 ms ✓ held" in text


def test_lost_work_is_shown_as_data_lost(tmp_path: Path) -> None:
    result = ScenarioResult("cdn_outage", load("cdn_outage"), "sqlite")
    result.tasks = _tasks(lost=[41])
    result.verdict = "data_lost"
    result.reason = "tasks lost 1, duplicated 0, unexpected 0 of 11 started"
    text = _text(_write(tmp_path / "run", [result], []))
    assert "Exit 3: data lost" in text and html_report.EXIT_MEANINGS[3] in text
    assert "cdn_outage on SQLite : Data lost: tasks lost 1, duplicated 0" in text
    assert "Data lost: work was lost, done twice or appeared from nowhere." in text
    assert "1 lost, 0 done twice, 0 unexpected" in text


def test_a_page_that_cannot_be_drawn_leaves_the_json_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(html_report, "render", broken)
    folder = tmp_path / "run"
    folder.mkdir()
    result = _outage("sqlite", 0.0)

    assert report.write(folder, [result], META, 0) is None

    assert json.loads((folder / "summary.json").read_text())["exit_code"] == 0
    assert not (folder / "report.html").exists()
    assert "RuntimeError: no fonts today" in (folder / "report-error.txt").read_text()
    assert "report.html not written (RuntimeError: no fonts today)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("expected", "words"),
    [
        ("p99_ms <= 50.0 ms", "at most 50 ms"),
        ("import_success_rate >= 0.95", "at least 0.95"),
        ("all_ok == True", "yes"),
        ("== closed", "closed"),
        ("error_rate == 0.0", "0"),
        ("is true", "yes"),
    ],
)
def test_targets_are_said_in_words(expected: str, words: str) -> None:
    assert html_report.target(expected) == words


def test_the_terminal_table_tells_backends_apart_in_plain_words() -> None:
    terminal = ui.Terminal()
    terminal.console.file = io.StringIO()
    terminal.console.width = 250
    results = [_outage("sqlite", 0.0), _outage("postgresql", 0.862)]
    results[0].figures["mttd_open_s"] = 0.235

    terminal.table(results, 0, 43)

    out = terminal.console.file.getvalue()
    assert "database_outage (SQLite)" in out and "database_outage (PostgreSQL)" in out
    assert "public errors 86.2 % (not promised here)" in out
    assert "detected in 0.235 s" in out
    assert "downloads 2 ok, 9 failed (recorded), none lost" in out
    assert "MTTD" not in out and "0unexp" not in out and "2ok/" not in out
