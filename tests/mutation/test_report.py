"""The mutation report: mutmut's listing parsed into per-module scores, equivalents apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mutation import report
from mutation.selection import BadTarget, mutant_globs, mutated_patterns

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

BREAKER = "system.resilience.breaker.xǁAsyncCircuitBreakerǁ_notify__mutmut_"
STORE = "system.resilience.store.x_step_reset__mutmut_"
# What `mutmut results --all true` prints, statuses as mutmut names them.
LISTING = f"""
    {BREAKER}1: killed
    {BREAKER}2: survived
    {BREAKER}3: survived
    {BREAKER}4: timeout
    {STORE}1: killed
    {STORE}2: no tests
    {STORE}3: not checked
    {STORE}4: suspicious
"""


def _diff(name: str) -> str:
    return f"-old {name}\n+new {name}"


def test_the_listing_gives_every_mutant_its_status() -> None:
    statuses = report.parse_results("Removed 3 obsolete test names\n" + LISTING)
    assert statuses[f"{BREAKER}2"] == "survived"
    assert statuses[f"{STORE}2"] == "no tests"
    assert len(statuses) == 8


def test_the_module_is_the_name_before_the_mangled_function() -> None:
    assert report.module_of(f"{BREAKER}2") == "system.resilience.breaker"
    assert report.module_of(f"{STORE}1") == "system.resilience.store"
    with pytest.raises(ValueError, match="not a mutmut mutant name"):
        report.module_of("system.resilience.store")


def test_the_score_is_caught_out_of_the_mutants_a_test_ran_against() -> None:
    built = report.build(report.parse_results(LISTING), {}, _diff)
    breaker, store = built.modules
    assert breaker.module == "system.resilience.breaker"
    assert [breaker.counts[s] for s in ("killed", "survived", "timeout")] == [1, 2, 1]
    assert breaker.score == 50.0
    # no tests, not checked and suspicious are left out: one killed of one reachable
    assert store.reachable == 1
    assert store.score == 100.0
    assert built.total.score == pytest.approx(60.0)
    assert list(built.survivors) == [f"{BREAKER}2", f"{BREAKER}3"]
    assert built.survivors[f"{BREAKER}3"] == _diff(f"{BREAKER}3")


def test_an_equivalent_mutant_is_counted_apart_and_not_listed() -> None:
    equivalent = {
        f"{BREAKER}3": "the same call either way",
        f"{BREAKER}1": "was killed",
        f"{STORE}3": "not run this time",
    }
    built = report.build(report.parse_results(LISTING), equivalent, _diff)
    breaker = built.modules[0]
    assert list(built.survivors) == [f"{BREAKER}2"]
    assert breaker.counts["equivalent"] == 1
    assert breaker.score == pytest.approx(100 * 2 / 3)
    # an entry naming a killed mutant is reported, not silently applied; one not run yet is neither
    assert built.stale_equivalent == [f"{BREAKER}1"]
    assert built.equivalent == {f"{BREAKER}3": "the same call either way"}


def test_the_report_files_hold_the_table_and_the_diffs(tmp_path: Path) -> None:
    built = report.build(report.parse_results(LISTING), {f"{BREAKER}3": "same"}, _diff)
    md, js = report.write(built, tmp_path, "nox -s mutants")
    text = md.read_text(encoding="utf-8")
    assert "| system.resilience.breaker | 1 | 1 | 1 | 0 | 1 | 0 | 0 | 66.7% |" in text
    assert f"+new {BREAKER}2" in text
    assert f"- `{BREAKER}3`: same" in text
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["modules"]["system.resilience.store"]["score"] == 100.0
    assert list(data["survivors"]) == [f"{BREAKER}2"]
    assert "2 surviving" not in report.summary(built)
    assert "1 surviving mutants" in report.summary(built)


def test_an_equivalent_entry_without_a_reason_is_refused(tmp_path: Path) -> None:
    listed = tmp_path / "equivalent.toml"
    listed.write_text(f'[equivalent]\n"{BREAKER}2" = ""\n', encoding="utf-8")
    with pytest.raises(ValueError, match="one-line reason"):
        report.load_equivalent(listed)


def test_the_tracked_equivalence_list_loads() -> None:
    equivalent = report.load_equivalent()
    assert all(report.module_of(name).startswith("system.") for name in equivalent)


def test_files_and_folders_become_name_globs_and_names_pass_through() -> None:
    patterns = mutated_patterns(REPO_ROOT / "pyproject.toml")
    targets = ["system/resilience/breaker.py", "system/resilience", f"{BREAKER}*"]
    assert mutant_globs(targets, patterns, REPO_ROOT) == [
        "system.resilience.breaker.*",
        "system.resilience.*",
        f"{BREAKER}*",
    ]


@pytest.mark.parametrize("target", ["system/bgg/parser.py", "system/nowhere.py", "system/bgg"])
def test_a_file_without_mutants_is_refused(target: str) -> None:
    patterns = mutated_patterns(REPO_ROOT / "pyproject.toml")
    with pytest.raises(BadTarget, match="only_mutate"):
        mutant_globs([target], patterns, REPO_ROOT)


def test_the_command_refuses_a_bad_target_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from mutation.__main__ import main

    with pytest.raises(SystemExit) as ended:
        main(["system/bgg/parser.py"])
    assert ended.value.code == 2
    assert "not a file that gets mutants" in capsys.readouterr().err
