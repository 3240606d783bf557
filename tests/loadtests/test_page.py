"""report.html: written from a run's files, verdict first, every threshold stated, self-contained.

The run here is synthesized the way a real one is recorded: the summary comes from
`summary.build` over snapshots of statistics, the history CSV has Locust's columns and its
habits (running totals, `N/A` before an entry's first request, 0 percentiles before its window
fills). The page is opened in a real browser by the slow tests in `test_runs.py`.
"""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loadtests import cli, names, plans, summary
from loadtests.history import read_history
from loadtests.page import PageError, write_page
from loadtests.thresholds import build_thresholds, evaluate_all
from loadtests.windows import Counts, Snapshot

START = 1_796_556_517  # epoch seconds of the run's start, as Locust stamps its rows
OPTIONS = {
    "shape": "outage",
    "outage_window": "0.3-0.6",
    "outage_fault": "error",
    "slo_error_rate": 0.01,
    "slo_breaker_p99_ms": "auto",
    "slo_public_p95_ms": 500.0,
    "slo_breaker_health_ratio": None,
    "public_weight": 8,
    "importer_weight": 3,
    "admin_weight": 1,
    "probe_users": 1,
}
HEADER = [
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%", "75%",
    "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%", "Total Request Count",
    "Total Failure Count", "Total Median Response Time", "Total Average Response Time",
    "Total Min Response Time", "Total Max Response Time", "Total Average Content Size",
]  # fmt: skip


def counts(requests: int, failures: int, ms: int) -> Counts:
    return Counts(requests, failures, {ms: requests})


def history_row(second: int, method: str, name: str, total: int, failed: int, ms: int) -> list[Any]:
    percentiles: list[Any] = ["N/A"] * 11 if total == 0 else [ms] * 11
    if second < 2 and total:
        percentiles = [0] * 11  # Locust's window is not filled yet
    return [START + second, 10, method, name, "0.0", "0.0", *percentiles, total, failed,
            ms, ms, ms, ms, 100]  # fmt: skip


READS = ((names.PUBLIC_LIST, 10, 12), (names.PUBLIC_SEARCH, 2, 15), (names.PUBLIC_DETAIL, 3, 9))
"""(name, requests per second, ms) of the public reads, from the first second to the last."""


def write_history(folder: Path, rejections_ms: int) -> None:
    """20 s: public reads, imports failing at 1/s from 6 s to 8 s, rejections from 8 s."""
    rows = []
    for second in range(21):
        failed = min(max(second - 6, 0), 2)
        rejected = 5 * max(second - 8, 0) if second <= 12 else 20
        for name, rate, ms in READS:
            rows.append(history_row(second, "GET", name, rate * second, 0, ms))
        rows.append(history_row(second, "POST", names.IMPORT, 2 * second, failed, 300))
        if rejected:
            rows.append(
                history_row(second, "POST", names.IMPORT_BREAKER_OPEN, rejected, 0, rejections_ms)
            )
        rows.append(history_row(second, "GET", names.HEALTH, 3 * second, 0, 2))
        total = 15 * second + 2 * second + rejected + 3 * second
        rows.append(history_row(second, "", "Aggregated", total, failed, 40))
    with (folder / "locust_stats_history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def make_run(folder: Path, *, rejections_ms: int = 6, rejections: int = 20) -> dict[str, Any]:
    """A 20 s outage run's files in `folder`: summary.json, history, failures, Locust's page."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = {
        **{(name, "GET"): counts(20 * rate, 0, ms) for name, rate, ms in READS},
        (names.IMPORT, "POST"): counts(40, 2, 300),
        (names.HEALTH, "GET"): counts(60, 0, 2),
    }
    if rejections:
        entries[(names.IMPORT_BREAKER_OPEN, "POST")] = counts(rejections, 0, rejections_ms)
    final = Snapshot(20.0, entries)
    phases = plans.outage(10, 5.0, 20.0, (0.3, 0.6))
    records = [
        summary.PhaseRecord(phases[0], Snapshot(0.0, {}), "closed"),
        summary.PhaseRecord(phases[1], Snapshot(6.0, {}), "open"),
        summary.PhaseRecord(phases[2], Snapshot(12.0, {}), "closed"),
    ]
    verdicts = evaluate_all(build_thresholds(OPTIONS), final)
    result = summary.build(final, verdicts, shape="outage", options=OPTIONS,
                           started_at=START, finished_at=START + 20, phases=records)  # fmt: skip
    result["run"] = {"users": 10, "spawn_rate": 5.0, "duration_s": 20, "seed_games": 40,
                     "host": "http://127.0.0.1:8123", "command": "python -m loadtests"}  # fmt: skip
    summary.write(folder / "summary.json", result)
    write_history(folder, rejections_ms)
    (folder / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        f"POST,{names.IMPORT},CatchResponseError('HTTP 502 bgg_transient_error'),2\n"
    )
    (folder / "locust_report.html").write_text("<html>Locust</html>")
    return result


class _Page(HTMLParser):
    """The page's visible text, its links, and every tag that could fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.fetching: list[str] = []
        self.svgs = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag in ("script", "link", "img", "iframe") or "src" in found:
            self.fetching.append(tag)
        if tag == "svg":
            self.svgs += 1
        if tag in ("style", "svg", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "svg", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    @property
    def words(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passing run's folder with its page written: drawn once, read by several tests."""
    folder = tmp_path_factory.mktemp("passing")
    make_run(folder)
    write_page(folder)
    return folder


def without_figures(folder: Path, **kwargs: Any) -> None:
    """A run whose page is about its verdict: no history, so nothing to draw (fast)."""
    make_run(folder, **kwargs)
    (folder / "locust_stats_history.csv").unlink()


def page_of(folder: Path) -> _Page:
    parsed = _Page()
    parsed.feed((folder / "report.html").read_text(encoding="utf-8"))
    return parsed


def test_a_passing_run_states_its_verdict_first_and_every_threshold(passing: Path) -> None:
    page = page_of(passing)
    words = page.words
    assert words.index("PASSED") < words.index("Thresholds")
    assert "3 of 3 thresholds held" in words
    assert "Exit code 0" in words
    assert (
        "The error rate over all requests must stay below 1 %: it was 0.476 % "
        "(2 of 420 requests failed). target < 1 % · measured 0.476 %" in words
    )
    assert "must stay below 50 ms: it was 6 ms over 20 rejections" in words
    assert (
        "slowest public read (list, search, detail) must stay below 500 ms: it was 15 ms" in words
    )
    assert "FAIL" not in words
    # the ratio is not a threshold by default, but it is reported
    assert "Reported, not judged" in words
    assert "ratio of 3.0x" in words


def test_a_breach_shows_fail_and_its_reason(tmp_path: Path) -> None:
    without_figures(tmp_path, rejections_ms=400)

    write_page(tmp_path)

    words = page_of(tmp_path).words
    assert words.strip().startswith("Load run: FAILED")
    assert words.index("2 of 3 thresholds held") < words.index("Thresholds")
    assert "2 of 3 thresholds held" in words
    assert "Exit code 1" in words
    assert "must stay below 50 ms: it was 400 ms over 20 rejections" in words
    assert (
        "FAIL While the BGG breaker is open" in words
        and "Why it failed: p99 of import (breaker open): measured 400 ms, target < 50 ms" in words
    )


def test_a_threshold_with_nothing_measured_fails_with_that_reason(tmp_path: Path) -> None:
    without_figures(tmp_path, rejections=0)

    write_page(tmp_path)

    words = page_of(tmp_path).words
    assert "must stay below 50 ms: nothing was measured" in words
    assert "measured no data" in words
    assert "no requests named 'import (breaker open)' were made" in words


@pytest.mark.parametrize(
    ("change", "verdict", "explained"),
    [
        ({"harness_errors": ["the fake BGG's control API answered HTTP 500"]}, "HARNESS ERROR",
         "Harness error: the fake BGG's control API answered HTTP 500"),
        ({"exit_code": 130}, "INTERRUPTED", "The run was interrupted"),
        ({"exit_code": 2}, "HARNESS ERROR", "Locust did not end cleanly"),
    ],
)  # fmt: skip
def test_a_run_that_cannot_vouch_for_itself_says_so(
    tmp_path: Path, change: dict[str, Any], verdict: str, explained: str
) -> None:
    without_figures(tmp_path)
    recorded = json.loads((tmp_path / "summary.json").read_text())
    summary.write(tmp_path / "summary.json", {**recorded, **change})

    write_page(tmp_path)

    words = page_of(tmp_path).words
    assert words.strip().startswith(f"Load run: {verdict}")
    assert explained in words
    assert "3 of 3 thresholds held" in words  # the thresholds alone do not make it a pass


def test_the_page_shows_the_run_its_phases_and_links_locusts_report(passing: Path) -> None:
    page = page_of(passing)
    words = page.words
    assert "outage: BGG down from 6.0 s to 12.0 s (0.3-0.6 of the run" in words
    assert "40 games imported before the load" in words
    assert "http://127.0.0.1:8123" in words
    assert "warm-up 0.0 6.0 10 up closed" in words
    assert "outage 6.0 12.0 10 down open" in words
    assert "CatchResponseError('HTTP 502 bgg_transient_error') 2" in words
    assert "locust_report.html" in page.links  # relative: it stays beside the page
    assert all("://" not in link for link in page.links)
    assert page.fetching == []  # self-contained: nothing to load


COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("git", "shown"),
    [
        ({"commit": COMMIT, "dirty": True}, "commit 0123456789ab (uncommitted changes) command"),
        ({"commit": COMMIT, "dirty": False}, "commit 0123456789ab command"),
        ({"commit": None, "dirty": None}, "load average at start 0.5 / 0.4 / 0.3 command"),
        (None, "load average at start 0.5 / 0.4 / 0.3 command"),  # written before chaos.meta
    ],
)
def test_the_page_names_the_commit_when_git_could_tell(
    tmp_path: Path, git: dict[str, Any] | None, shown: str
) -> None:
    without_figures(tmp_path)
    result = json.loads((tmp_path / "summary.json").read_text())
    result["run"].update(machine="x86_64", load_average_at_start=[0.5, 0.4, 0.3], git=git)
    summary.write(tmp_path / "summary.json", result)

    write_page(tmp_path)

    assert shown in page_of(tmp_path).words


def test_every_endpoint_with_enough_requests_gets_a_figure_with_the_outage_shaded(
    passing: Path,
) -> None:
    html = (passing / "report.html").read_text()
    page = page_of(passing)
    # the overview, three public reads, the import, the rejections, /health
    assert page.svgs == 7
    for heading in (f"GET {names.PUBLIC_LIST}", f"POST {names.IMPORT_BREAKER_OPEN}",
                    f"GET {names.HEALTH}"):  # fmt: skip
        assert heading in page.words
    assert html.count("BGG down (outage)") == 7  # each figure's legend
    assert "seconds from the start of the run" in html
    assert "response time (ms)" in html
    assert "target: p99 &lt; 50 ms" in html  # the breaker target, drawn where it applies


def test_the_history_gives_rates_per_interval_and_no_percentile_before_the_window(
    tmp_path: Path,
) -> None:
    make_run(tmp_path)

    history = read_history(tmp_path / "locust_stats_history.csv", start=START)

    imports = history.entries[("POST", names.IMPORT)]
    assert imports.seconds[:3] == [0.0, 1.0, 2.0]
    assert imports.requests_per_s[1:4] == [2.0, 2.0, 2.0]
    assert imports.failures_per_s[6:10] == [0.0, 1.0, 1.0, 0.0]
    assert imports.percentiles["p99"][:3] == [None, None, 300.0]
    assert (imports.requests, imports.failures) == (40, 2)
    rejections = history.entries[("POST", names.IMPORT_BREAKER_OPEN)]
    assert rejections.seconds[0] == 9.0
    assert rejections.requests_per_s[0] == 5.0  # its first row counts from zero
    assert history.total is not None
    assert history.total.users[-1] == 10


def test_without_a_history_the_page_still_gives_the_verdict(tmp_path: Path) -> None:
    without_figures(tmp_path)

    write_page(tmp_path)

    page = page_of(tmp_path)
    assert "PASSED" in page.words
    assert "No figures: no statistics history" in page.words
    assert page.svgs == 0


def test_report_command_writes_the_page_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    without_figures(tmp_path)

    assert cli.main(["report", str(tmp_path)]) == 0

    assert capsys.readouterr().out == f"{tmp_path / 'report.html'}\n"
    assert "PASSED" in page_of(tmp_path).words


def test_report_command_on_a_folder_without_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"python -m loadtests: error: {tmp_path}: no summary.json "
        "(is this a load run's report folder?)\n"
    )
    with pytest.raises(PageError):
        write_page(tmp_path)


def test_a_page_that_cannot_be_drawn_leaves_the_verdict_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    without_figures(tmp_path)
    broken = (tmp_path / "summary.json").read_text().replace('"target": 0.01', '"target": "x"')
    (tmp_path / "summary.json").write_text(broken)

    assert cli.try_write_page(tmp_path) is None

    assert "python -m loadtests: report.html not written: ValueError" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()
