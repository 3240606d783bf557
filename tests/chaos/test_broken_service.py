"""The harness must catch a broken service (issue 7, item 7).

Each test runs `python -m chaos run` against the real service started with a deliberately
broken configuration through `--service-env`, and checks that the right scenario fails with
exit code 1 or 3 and names the hypothesis that caught it. The same hypotheses hold with the
default configuration (`default_run`). The harness states its hypotheses against the spec
and its own settings, never against values read back from the service, which is why an
override that breaks a promise is caught.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chaos.html_report import VERDICT_WORDS
from chaos.report import VERDICTS
from tests.conftest import REPO_ROOT
from tests.services import missing
from tests.support.browser import render
from tests.support.waiting import eventually_sync

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow


def run_chaos(
    report_dir: Path, *args: str, timeout: float = 240, page: bool = False
) -> tuple[int, dict[str, Any], str]:
    """Run the CLI; (exit code, summary.json, stdout). The page (seconds of plotting) only when
    the test opens it."""
    no_page = [] if page else ["--no-page"]
    result = subprocess.run(
        [sys.executable, "-m", "chaos", "run", *args, "--report-dir", str(report_dir), *no_page],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    summary_path = report_dir / "latest" / "summary.json"
    assert summary_path.exists(), f"no summary (exit {result.returncode}): {result.stderr}"
    return result.returncode, json.loads(summary_path.read_text()), result.stdout


def hypotheses(summary: dict[str, Any], scenario: str) -> dict[str, bool]:
    """`{hypothesis name: met}` of one scenario."""
    (entry,) = [s for s in summary["scenarios"] if s["name"] == scenario]
    return {h["name"]: h["met"] for h in entry["hypotheses"]}


def verdict(summary: dict[str, Any], scenario: str) -> str:
    (entry,) = [s for s in summary["scenarios"] if s["name"] == scenario]
    return str(entry["verdict"])


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    """The scenarios the broken configurations are caught by, with the default settings:
    exit code, summary and the run's folder."""
    reports = tmp_path_factory.mktemp("default")
    code, summary, _ = run_chaos(
        reports, "bgg_outage", "bgg_blackhole", "bgg_flaky", "cdn_outage",
        "breaker_self_recovery", "bulk_import_outage", "service_restart", "worker_crash",
        page=True,
    )  # fmt: skip
    return code, summary, (reports / "latest").resolve()


# The hypotheses each broken configuration must trip, and the scenario that checks them.
CAUGHT = {
    "bgg_outage": ["breaker-opens-after-fail-max", "one-half-open-trial"],
    "bgg_blackhole": ["imports-end-within-deadline"],
    "bgg_flaky": ["import-success-rate"],
    "breaker_self_recovery": [
        "closes-without-traffic",
        "gauge-reads-closed",
        "alert-fires-once-resolves-once",
    ],
    "bulk_import_outage": ["breaker-opens", "jobs-wait", "breaker-closes", "every-id-ended"],
    "service_restart": ["all-jobs-done", "killed-jobs-taken-over"],
    "worker_crash": ["other-worker-finishes-them"],
}


def test_default_configuration_keeps_the_promises(
    default_run: tuple[int, dict[str, Any], Path],
) -> None:
    code, summary, _ = default_run
    assert code in (0, 1), summary
    for scenario, names in CAUGHT.items():
        held = hypotheses(summary, scenario)
        for name in names:
            assert held[name], f"{scenario}: {name} fails with the default configuration"
    # bgg_flaky passes outright; the latency promises of the others (p99 < 50 ms) also
    # depend on what else runs on this 2-core machine, so they are not asserted here.
    assert verdict(summary, "bgg_flaky") == "passed"
    for entry in summary["scenarios"]:
        tasks = entry["tasks"]
        assert tasks["lost"] == tasks["duplicated"] == tasks["unexpected"] == 0
        jobs = tasks["jobs"]
        assert jobs["lost"] == jobs["duplicated"] == jobs["unexpected"] == 0, entry["name"]


def test_breaker_effectively_disabled_is_caught(tmp_path: Path, browser: Browser) -> None:
    code, summary, out = run_chaos(
        tmp_path, "bgg_outage", "--service-env", "BGG_BREAKER_FAIL_MAX=1000", page=True
    )
    assert code == 1
    assert not hypotheses(summary, "bgg_outage")["breaker-opens-after-fail-max"]
    assert "✗ breaker-opens-after-fail-max" in out
    # The page says so too, first thing, and names the broken promise in words.
    page = render(browser, tmp_path / "latest" / "report.html")
    text = " ".join(page.text.split())
    assert text.index("Exit 1: deviated") < text.index("bgg_outage on SQLite deviated")
    assert "Deviated: breaker-opens-after-fail-max" in text
    assert "The breaker opens after exactly 5 failed upstream requests" in text
    assert "✗ failed" in text
    assert "--service-env BGG_BREAKER_FAIL_MAX=1000" in text, "the replay keeps the setting"
    assert page.offsite == [] and page.errors == []


def test_the_report_page_shows_each_scenario_verdict_first(
    default_run: tuple[int, dict[str, Any], Path], browser: Browser, tmp_path: Path
) -> None:
    """The run's report.html, in a real browser: the verdict before anything else, each
    scenario's name and verdict, and nothing fetched from elsewhere."""
    code, summary, folder = default_run
    shot = tmp_path / "report.png"

    page = render(browser, folder / "report.html", screenshot=shot)

    text = " ".join(page.text.split())
    first = text.index(f"Exit {code}: {VERDICT_WORDS[VERDICTS[code]]}")
    for entry in summary["scenarios"]:
        heading = f"{entry['scenario']} on SQLite {VERDICT_WORDS[entry['verdict']]}"
        assert heading in text, heading
        assert first < text.index(heading)
    passed = sum(entry["verdict"] == "passed" for entry in summary["scenarios"])
    assert f"{passed} of {len(summary['scenarios'])} scenarios passed" in text
    assert text.count("What happened") == len(summary["scenarios"]), "a timeline each"
    assert page.offsite == [] and page.errors == []
    assert shot.stat().st_size > 50_000


def test_jobs_that_fail_instead_of_waiting_are_caught(tmp_path: Path) -> None:
    # A breaker that never opens: with BGG down, every bgg_import job of the bulk import
    # spends its attempts and is failed with a row, where it should have waited.
    code, summary, out = run_chaos(
        tmp_path, "bulk_import_outage", "--service-env", "BGG_BREAKER_FAIL_MAX=1000"
    )
    assert code == 1
    held = hypotheses(summary, "bulk_import_outage")
    assert held["bulk-import-accepted"]
    for name in ("breaker-opens", "jobs-wait"):
        assert not held[name], name
        assert f"✗ {name}" in out


def test_a_breaker_that_never_half_opens_is_caught(tmp_path: Path) -> None:
    code, summary, out = run_chaos(
        tmp_path, "bgg_outage", "--service-env", "BGG_BREAKER_RESET_TIMEOUT=3600"
    )
    assert code == 1
    held = hypotheses(summary, "bgg_outage")
    assert held["breaker-opens-after-fail-max"], "it still opens after 5"
    assert not held["one-half-open-trial"]
    assert "✗ one-half-open-trial" in out


def test_a_breaker_that_never_recovers_by_itself_is_caught(tmp_path: Path) -> None:
    code, summary, out = run_chaos(
        tmp_path, "breaker_self_recovery", "--service-env", "BGG_RECOVERY_PROBE_ID=0"
    )
    assert code == 1
    held = hypotheses(summary, "breaker_self_recovery")
    assert held["breaker-opens"] and held["alert-fires"], "the outage itself is as before"
    for name in ("closes-without-traffic", "gauge-reads-closed", "alert-fires-once-resolves-once"):
        assert not held[name], name
        assert f"✗ {name}" in out


def test_retries_disabled_are_caught_by_the_flaky_scenario(tmp_path: Path) -> None:
    code, summary, out = run_chaos(tmp_path, "bgg_flaky", "--service-env", "BGG_RETRY_ATTEMPTS=1")
    assert code == 1
    assert not hypotheses(summary, "bgg_flaky")["import-success-rate"]
    assert "✗ import-success-rate" in out


def test_a_deadline_far_too_long_is_caught_by_the_blackhole(tmp_path: Path) -> None:
    code, summary, out = run_chaos(
        tmp_path, "bgg_blackhole", "--service-env", "BGG_DEADLINE_SECONDS=60"
    )
    assert code == 1
    assert not hypotheses(summary, "bgg_blackhole")["imports-end-within-deadline"]
    assert "✗ imports-end-within-deadline" in out


def test_failure_records_dropped_are_caught_and_their_jobs_run_again(tmp_path: Path) -> None:
    """RECORD_FAILURES=false drops every failure record. Before the job queue that was data
    loss (exit 3). Now the record is what ends a job, so a job whose failure was dropped keeps
    its lease, runs again once the lease expires (at-least-once) and succeeds after the CDN is
    back: no job is lost, but the failure rows the outage must leave are missing (exit 1)."""
    code, summary, out = run_chaos(tmp_path, "cdn_outage", "--service-env", "RECORD_FAILURES=false")
    assert code == 1
    (entry,) = summary["scenarios"]
    assert entry["verdict"] == "deviated"
    held = hypotheses(summary, "cdn_outage")
    assert not held["one-failure-row-per-task"]
    assert "✗ one-failure-row-per-task" in out
    jobs = entry["tasks"]["jobs"]
    assert jobs["lost"] == 0 and jobs["done"] == jobs["expected"] > 0


def test_jobs_that_cannot_be_taken_over_are_caught(tmp_path: Path) -> None:
    """One claim per job: a job whose process died is failed (LeaseExpired), not re-run."""
    code, summary, out = run_chaos(
        tmp_path, "service_restart", "worker_crash", "--service-env", "JOB_MAX_ATTEMPTS=1"
    )
    assert code == 1
    restart = hypotheses(summary, "service_restart")
    assert restart["sigterm-exits-cleanly"] and restart["unfinished-jobs-handed-back"]
    assert not restart["all-jobs-done"] and not restart["killed-jobs-taken-over"]
    assert not hypotheses(summary, "worker_crash")["other-worker-finishes-them"]
    assert "✗ other-worker-finishes-them" in out
    for entry in summary["scenarios"]:
        # Failed with their failure rows: accounted for, so not data loss.
        assert entry["tasks"]["jobs"]["failed_recorded"] > 0


def test_the_same_seed_replays_the_same_faults(
    default_run: tuple[int, dict[str, Any], Path], tmp_path: Path
) -> None:
    _, first, _ = default_run
    _, again, _ = run_chaos(tmp_path, "bgg_flaky", "--seed", str(first["seed"]))

    def digest(summary: dict[str, Any]) -> str:
        (entry,) = [s for s in summary["scenarios"] if s["name"] == "bgg_flaky"]
        return str(entry["figures"]["fault_sequence_sha256"])

    assert digest(again) == digest(first)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        status = Path(f"/proc/{pid}/status").read_text()
    except (ProcessLookupError, FileNotFoundError):  # gone, maybe between the two looks
        return False
    return "State:\tZ" not in status


def test_ctrl_c_rolls_back_and_leaves_nothing_running(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", "bgg_outage", "--report-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:  # wait until the fault is on
            if "fault bgg-503 on" in line:
                break
        else:
            pytest.fail("the scenario never switched its fault on")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2, stderr
    events = [
        json.loads(line) for line in (tmp_path / "latest" / "events.jsonl").read_text().splitlines()
    ]
    pids = [pid for e in events if e["kind"] == "deployment" for pid in e["pids"]]
    assert pids, "the service's pid was recorded"
    # The harness has returned; its children may still be exiting (bounded, not slept).
    eventually_sync(
        lambda: [pid for pid in pids if _alive(pid)],
        "the service's processes to exit after the harness did",
        until=lambda alive: not alive,
    )
    journal = json.loads((tmp_path / "latest" / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert "Exit 2: harness error" in (tmp_path / "latest" / "report.html").read_text()
    (scenario,) = journal["journals"]
    assert scenario["rollbacks"] and scenario["rollbacks"][0]["status"] == "succeeded"


def test_redis_scenarios_need_redis() -> None:
    """The two-worker scenarios run a private redis-server; CI must have one."""
    from chaos.redis_server import redis_available

    if not redis_available():
        missing("redis-server is not installed")
