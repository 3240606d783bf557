"""`python -m chaos mutants`: the catalogue applies to today's `system/`, the copy-and-patch
never touches the real tree, bad arguments are exit 2, and one cheap mutant is caught end to
end by the service really started from the mutated copy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos import scenarios
from chaos.cli import main
from chaos.mutants import cli as mutants_cli
from chaos.mutants import matrix
from chaos.mutants.catalogue import (
    CATALOGUE,
    CODE,
    DATA_LOST,
    ENV,
    KNOWN_BLIND,
    NAMES,
    Mutant,
    Replacement,
    get,
)
from chaos.mutants.run import Cell, MutantResult, judge
from chaos.mutants.tree import PatchError, check_applies, mutated_copy
from chaos.service import HarnessError, check_source, env_pair, source_env
from tests.conftest import REPO_ROOT


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.py"))
    }


def _exit_code(argv: list[str]) -> int:
    """`main`'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exited:
        return int(exited.code or 0)


@pytest.mark.parametrize("mutant", CODE, ids=lambda m: m.name)
def test_every_code_mutant_applies_to_the_current_service(mutant: Mutant) -> None:
    assert mutant.replacements, "a code mutant changes something"
    check_applies(mutant, REPO_ROOT)


@pytest.mark.parametrize("mutant", ENV, ids=lambda m: m.name)
def test_every_env_mutant_names_real_settings(mutant: Mutant) -> None:
    assert mutant.env and not mutant.replacements
    for key, value in mutant.env.items():
        assert env_pair(f"{key}={value}") == (key, value)


def test_the_catalogue_names_are_unique_and_its_scenarios_exist() -> None:
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    for mutant in CATALOGUE:
        assert mutant.scenarios, mutant.name
        assert set(mutant.scenarios) <= set(scenarios.NAMES), mutant.name


def test_the_once_blind_bug_classes_are_catalogued_and_what_stays_blind_is_not_run() -> None:
    # Issue 18: every class of bug it names is caught by a scenario. These four were listed as
    # blind (no scenario observed them) until sentry_reports, bgg_retry_herd and
    # database_outage's delete check.
    once_blind = {
        "retry-without-jitter": ("bgg_retry_herd", "retries-jittered"),
        "sentry-health-transactions": ("sentry_reports", "no-sentry-event-for-health"),
        "sentry-secrets-unscrubbed": ("sentry_reports", "no-secret-in-reports-or-logs"),
        "commit-after-response": ("database_outage", "delete-committed-before-2xx"),
    }
    for name, (scenario, hypothesis) in once_blind.items():
        mutant = get(name)
        assert mutant.kind == "code" and mutant.replacements
        assert scenario in mutant.scenarios and hypothesis in mutant.hypotheses
    assert not set(KNOWN_BLIND) & set(NAMES)
    assert set(KNOWN_BLIND) == {"sentry-health-error-filter"}


def _hypotheses(scenario: str) -> set[str]:
    found = scenarios.load(scenario)
    names = {steady.probe.name for steady in found.hypothesis.probes}
    return names | {a.name for a in found.method if a.tolerance is not None}


def test_every_mutant_names_hypotheses_its_scenarios_state() -> None:
    for mutant in CATALOGUE:
        assert mutant.hypotheses, mutant.name
        stated = set().union(*(_hypotheses(s) for s in mutant.scenarios)) | {DATA_LOST}
        assert set(mutant.hypotheses) <= stated, mutant.name


def _entry(verdict: str, *failed: str) -> dict[str, Any]:
    held = [{"name": "public-api-answers", "met": True}]
    return {"verdict": verdict, "reason": "why", "hypotheses": held + [
        {"name": name, "met": False} for name in failed]}  # fmt: skip


def test_only_the_mutants_own_hypotheses_catch_it() -> None:
    mutant = get("job-acked-on-claim")
    caught = judge(
        mutant, "service_restart", _entry("deviated", "all-jobs-done", "rejections-fast")
    )
    assert (caught.outcome, caught.detail) == ("caught", "all-jobs-done")
    # A latency probe failing on a loaded machine is not this bug showing.
    other = judge(mutant, "service_restart", _entry("deviated", "rejections-fast"))
    assert (other.outcome, other.detail) == ("not caught", "deviated only on rejections-fast")
    assert judge(mutant, "service_restart", _entry("data_lost")).outcome == "caught"
    assert judge(mutant, "service_restart", _entry("passed")).outcome == "not caught"
    errored = judge(mutant, "service_restart", _entry("error"))
    assert (errored.outcome, errored.detail) == ("error", "why")


def test_the_mutated_copy_differs_and_the_real_tree_is_untouched(tmp_path: Path) -> None:
    before = _digest(REPO_ROOT / "system")
    mutant = CODE[0]
    root = mutated_copy(mutant, REPO_ROOT, tmp_path)
    assert _digest(REPO_ROOT / "system") == before
    changed = {r.path for r in mutant.replacements}
    for path in changed:
        text = (root / path).read_text()
        assert all(r.new in text for r in mutant.replacements if r.path == path)
        assert text != (REPO_ROOT / path).read_text()
    after = _digest(root / "system")
    assert {f"system/{k}" for k in after if after[k] != before.get(k)} == changed


def test_a_mutant_that_no_longer_applies_is_named(tmp_path: Path) -> None:
    stale = Mutant("stale", "code", "gone", ("bgg_outage",), ("x",),
                   replacements=(Replacement("system/app.py", "not there\n", "x\n"),))  # fmt: skip
    with pytest.raises(PatchError, match=r"'stale' no longer applies.*system/app\.py.*not found"):
        check_applies(stale, REPO_ROOT)
    twice = Mutant("twice", "code", "ambiguous", ("bgg_outage",), ("x",),
                   replacements=(Replacement("system/app.py", "import", "x"),))  # fmt: skip
    with pytest.raises(PatchError, match=r"'twice'.*found \d+ times"):
        mutated_copy(twice, REPO_ROOT, tmp_path)


def test_the_cli_refuses_a_stale_catalogue_before_running_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = Mutant("stale", "code", "gone", ("bgg_outage",), ("x",),
                   replacements=(Replacement("system/app.py", "not there\n", "x\n"),))  # fmt: skip
    monkeypatch.setattr(mutants_cli, "CATALOGUE", (stale,))
    monkeypatch.setattr(mutants_cli, "NAMES", ("stale",))
    assert main(["mutants", "--report-dir", str(tmp_path / "m")]) == 2
    assert "'stale' no longer applies" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-mutant"], "unknown mutant 'no-such-mutant'"),
        (["--seed", "x"], "--seed: not a whole number"),
        (["--timeout", "1"], "--timeout: must be 10-3600"),
    ],
)
def test_bad_arguments_are_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(["mutants", *args, "--report-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_report_dir_that_is_a_file_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert _exit_code(["mutants", "--report-dir", str(tmp_path / "file" / "m")]) == 2


def test_the_service_source_check_sees_which_tree_would_run(tmp_path: Path) -> None:
    copy = mutated_copy(CODE[0], REPO_ROOT, tmp_path / "copy")
    check_source(copy, source_env({"PATH": "/usr/bin"}, copy))
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="would not run from"):
        # No `system/` there: the import falls through to another tree, which must be refused.
        check_source(tmp_path / "empty", source_env({"PATH": "/usr/bin"}, tmp_path / "empty"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "scenario", "hypothesis"),
    [
        # The cheapest: one scenario of ~4 s.
        ("breaker-counts-not-found", "bgg_bad_answers", "not-found-never-opens"),
        # It survived until service_restart's downloads outlasted the drain.
        ("drain-drops-running-jobs", "service_restart", "unfinished-jobs-handed-back"),
        # Once blind: ~3 s of bursts, caught with certainty (a gap under the fixed wait).
        ("retry-without-jitter", "bgg_retry_herd", "retries-jittered"),
    ],
)
def test_a_mutant_is_caught_end_to_end(
    tmp_path: Path, name: str, scenario: str, hypothesis: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chaos", "mutants", name, "--report-dir", str(tmp_path),
         "--timeout", "240"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    matrix = json.loads((tmp_path / "chaos-matrix.json").read_text())
    (row,) = matrix["rows"]
    assert row["mutant"] == name and row["status"] == "caught"
    cell = row["cells"][scenario]
    assert cell["outcome"] == "caught"
    assert hypothesis in cell["detail"].split(", ")
    assert f"`{name}`" in (tmp_path / "chaos-matrix.md").read_text()
    run_summary = json.loads((tmp_path / "runs" / name / "latest" / "summary.json").read_text())
    # The service ran from the throw-away copy, not from this tree.
    assert f"mutant-{name}-" in run_summary["options"]["service_source"]


def test_the_exit_code_is_0_all_caught_1_a_survivor_2_a_harness_error() -> None:
    mutant = get("retry-after-ignored")

    def result(outcome: str, error: str = "") -> MutantResult:
        cell = Cell("bgg_rate_limited", outcome, "x")
        return MutantResult(mutant, {cell.scenario: cell}, error=error)

    caught, survived = result("caught"), result("not caught")
    assert matrix.exit_code([caught, caught]) == 0
    assert matrix.exit_code([caught, survived]) == 1
    assert matrix.exit_code([caught, survived, result("error")]) == 2
    assert matrix.exit_code([result("not caught", error="chaos run did not end")]) == 2
    # Caught is caught, even when another of its scenarios could not judge.
    both = MutantResult(mutant, {"a": Cell("a", "caught", "deviated"), "b": Cell("b", "error", "")})
    assert matrix.exit_code([both]) == 0
    assert [matrix.status(r) for r in (caught, survived, result("error"))] == [
        "caught", "SURVIVED", "ERROR"]  # fmt: skip
