"""`python -m chaos`: the scenario list; bad input ending with exit 2, one line and nothing
created; and each run in a folder of its own, `latest` pointing at the one that finished last."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos.engine import skipped
from chaos.scenarios import NAMES, load
from chaos.service import free_port
from tests.chaos.test_harness_core import check_with_chaoslib
from tests.conftest import REPO_ROOT


def chaos(*args: str, report_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--report-dir", str(report_dir)] if report_dir is not None and args[0] == "run" else []
    return subprocess.run(
        [sys.executable, "-m", "chaos", *args, *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_list_names_every_scenario_with_its_fault() -> None:
    result = chaos("list")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert listed == list(NAMES)
    assert result.stdout.count("fault:") == len(NAMES)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run", "no_such_scenario"), "unknown scenario 'no_such_scenario'"),
        (("run", "--seed", "-1"), "--seed"),
        (("run", "--seed", "banana"), "--seed"),
        (("run", "--workers", "0"), "--workers"),
        (("run", "--service-env", "lowercase=1"), "--service-env"),
        (
            ("run", "--service-env", "BGG_BREAKER_FAIL_MAXX=10"),
            "not a setting of the service (did you mean BGG_BREAKER_FAIL_MAX?)",
        ),
        (("run", "--service-env", "BGG_RETRY_ATTEMPTS=0"), "BGG_RETRY_ATTEMPTS"),
        (("run", "--service-env", "BGG_DEADLINE_SECONDS=soon"), "BGG_DEADLINE_SECONDS"),
        (("run", "--database-url", "mysql://x"), "--database-url"),
        (("run", "--target", "http://127.0.0.1:1"), "--admin-token"),
        (("run", "--webhook-port", "0"), "--webhook-port"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    result = chaos(*args, report_dir=tmp_path / "reports")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is created"


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ("a file", "is not a folder"),
        ("below a file", "is not a folder"),
        ("latest is a folder", "is not a symlink"),
    ],
)
def test_a_report_dir_that_cannot_hold_runs_exits_2_before_anything(
    layout: str, says: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x", "utf-8")
    report_dir = {
        "a file": tmp_path / "file",
        "below a file": tmp_path / "file" / "chaos",
        "latest is a folder": tmp_path / "chaos",
    }[layout]
    if layout == "latest is a folder":
        (report_dir / "latest").mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    result = chaos("run", "bgg_outage", report_dir=report_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--report-dir" in lines[0] and says in lines[0], result.stderr
    assert sorted(tmp_path.rglob("*")) == before, "nothing is created"


def test_unreachable_target_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = chaos("run", "--target", url, "--admin-token", "t", report_dir=tmp_path)
    assert result.returncode == 2
    assert f"cannot reach --target {url}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--bgg-port", "--webhook-port"])
def test_port_in_use_exits_2_and_starts_nothing(option: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = chaos("run", "bgg_outage", option, str(port), report_dir=tmp_path)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "not available" in result.stderr
    assert list(tmp_path.iterdir()) == [], "no run folder, no service log"


def _finished(
    result: tuple[int, str, str], reports: Path, scenarios: list[str], *, page: bool = True
) -> Path:
    """The run folder the output names, after checking that it holds a whole report (and the
    page unless the run was told `--no-page`)."""
    code, stdout, stderr = result
    assert code in (0, 1), stderr[-2000:]
    lines = stdout.strip().splitlines()
    named_line = lines[-2] if page else lines[-1]
    named = re.search(r"reports in (\S+)/ ", named_line)
    assert named is not None and f"exit {code} " in named_line, named_line
    folder = Path(named.group(1))
    assert folder.parent == reports and folder.is_dir()
    if page:
        assert lines[-1] == f"report: {folder / 'report.html'}", "the output ends with the page"
        assert (folder / "report.html").is_file()
    else:
        assert not (folder / "report.html").exists()
        assert not (folder / "report-error.txt").exists()
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    assert summary["run_id"] == folder.name and summary["exit_code"] == code
    assert [s["name"] for s in summary["scenarios"]] == scenarios
    journal = json.loads((folder / "journal.json").read_text())
    assert journal["run_id"] == folder.name and journal["status"] == "completed"
    assert {e["scenario"] for e in journal["run"]} == set(scenarios), "CTK's run: activities"
    # What a real run writes is what chaoslib accepts: the run's journal and each scenario's.
    check_with_chaoslib(journal)
    for name in scenarios:
        check_with_chaoslib(json.loads((folder / f"journal-{name}.json").read_text()))
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events].count("upstreams") == 1, "one run's events only"
    assert {e["scenario"] for e in events} - {None} == set(scenarios)
    assert any((folder / "logs").glob("service-*.log"))
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_concurrent_and_later_runs_each_keep_a_folder_of_their_own(tmp_path: Path) -> None:
    """Two runs at once (same seed, same second), one of them a single scenario, then a third:
    every run's report stays whole and its own; `latest` is the run that finished last."""
    reports = tmp_path / "reports"

    def start(*scenarios: str) -> subprocess.Popen[str]:
        # Output to files: two runs' pipes are not drained while the test waits on one.
        name = "-".join(scenarios)
        with (
            (tmp_path / f"{name}.out").open("w") as out,
            (tmp_path / f"{name}.err").open("w") as err,
        ):
            return subprocess.Popen(
                [sys.executable, "-m", "chaos", "run", *scenarios, "--seed", "5",
                 "--report-dir", str(reports)],
                cwd=REPO_ROOT, text=True, stdout=out, stderr=err,
            )  # fmt: skip

    several, single = ["bgg_outage", "bgg_queued"], ["bgg_outage"]
    processes = [start(*several), start(*single)]
    try:
        codes = [p.wait(timeout=200) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    results = [
        (code, (tmp_path / f"{name}.out").read_text(), (tmp_path / f"{name}.err").read_text())
        for code, name in zip(codes, ("-".join(several), "-".join(single)), strict=True)
    ]
    first = _finished(results[0], reports, several)
    second = _finished(results[1], reports, single)
    assert first != second
    assert (reports / "latest").resolve() in (first.resolve(), second.resolve())
    kept = {first: _files(first), second: _files(second)}

    # The third without its page: every JSON file is still written.
    third = _finished(chaos_run(reports, *single, "--no-page"), reports, single, page=False)
    assert {first, second, third} == {p for p in reports.iterdir() if p.name != "latest"}
    assert (reports / "latest").is_symlink()
    assert (reports / "latest").resolve() == third.resolve()
    for folder, files in kept.items():
        assert _files(folder) == files, f"{folder.name} changed after it finished"


def chaos_run(reports: Path, *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "chaos", "run", *args, "--report-dir", str(reports)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def test_chaos_toolkit_validates_a_journal_experiment_and_refuses_to_run_it(
    tmp_path: Path,
) -> None:
    """Chaos Toolkit's own CLI (`chaos validate`, `chaos run`) on the experiment a journal
    carries: it validates; run, it fails at the first probe (exit 1), names where it runs,
    and nothing of the harness's ran."""
    scenario = load("bgg_outage")
    journal = skipped(scenario, scenario.name, "not run", "sqlite").journal
    experiment = tmp_path / "experiment.json"
    experiment.write_text(json.dumps(journal["experiment"]))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # where `chaos.ctk` is imported from

    def ctk(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "chaos"), "--no-version-check", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    validated = ctk("validate", str(experiment))
    assert validated.returncode == 0 and "Experiment looks valid" in validated.stderr
    ran = ctk("run", "--journal-path", str(tmp_path / "ctk.json"), str(experiment))
    assert ran.returncode == 1, ran.stderr[-2000:]
    assert "python -m chaos run bgg_outage" in ran.stderr
    theirs = json.loads((tmp_path / "ctk.json").read_text())
    assert theirs["status"] == "failed" and theirs["run"] == []
    (first, *_) = theirs["steady_states"]["before"]["probes"]
    assert first["status"] == "failed" and "HarnessOnly" in first["exception"][-1]
