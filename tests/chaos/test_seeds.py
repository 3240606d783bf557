"""The seed a run prints is the seed that replays it: a run seed derives each scenario's
seed, a scenario's seed is used as is, and `--seed` takes either back."""

from __future__ import annotations

import re

import pytest

from chaos.cli import build_parser
from chaos.runner import MAX_SEED, SCENARIO_SEEDS, derive_seed, is_scenario_seed
from chaos.ui import Terminal


@pytest.mark.parametrize("run_seed", [0, 1, 7, 427578844, SCENARIO_SEEDS - 1])
def test_a_run_seed_derives_a_scenario_seed_that_is_kept(run_seed: int) -> None:
    seed = derive_seed(run_seed, "bgg_flaky")
    assert not is_scenario_seed(run_seed)
    assert is_scenario_seed(seed) and seed <= MAX_SEED
    assert derive_seed(seed, "bgg_flaky") == seed
    # Given for a whole run, a scenario seed is every scenario's seed, as printed.
    assert derive_seed(seed, "bgg_outage") == seed


def test_run_seeds_still_give_each_scenario_its_own_seed() -> None:
    assert derive_seed(7, "bgg_flaky") != derive_seed(7, "bgg_outage")
    assert derive_seed(7, "bgg_flaky") != derive_seed(8, "bgg_flaky")
    assert derive_seed(7, "bgg_flaky") == derive_seed(7, "bgg_flaky")


@pytest.mark.parametrize("given", ["7", str(derive_seed(7, "bgg_flaky")), str(MAX_SEED)])
def test_the_cli_takes_run_and_scenario_seeds(given: str) -> None:
    assert build_parser().parse_args(["run", "--seed", given]).seed == int(given)


def test_the_cli_refuses_a_seed_beyond_the_scenario_seeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--seed", str(MAX_SEED + 1)])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err


@pytest.mark.parametrize("run_seed", [7, 427578844])
def test_every_seed_the_terminal_prints_replays_the_scenario(
    run_seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = derive_seed(run_seed, "bgg_flaky")
    Terminal().on_event(
        {"kind": "scenario_start", "scenario": "bgg_flaky", "seed": seed, "run_seed": run_seed}
    )
    line = capsys.readouterr().out
    printed = [int(s) for s in re.findall(r"--seed (\d+)", line)]
    assert sorted(printed) == sorted([seed, run_seed]), line
    for given in printed:
        parsed = build_parser().parse_args(["run", "bgg_flaky", "--seed", str(given)]).seed
        assert derive_seed(parsed, "bgg_flaky") == seed


def test_a_scenario_run_from_its_own_seed_prints_just_that(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = derive_seed(7, "bgg_flaky")
    Terminal().on_event(
        {"kind": "scenario_start", "scenario": "bgg_flaky", "seed": seed, "run_seed": seed}
    )
    assert f"(seed {seed})" in capsys.readouterr().out
