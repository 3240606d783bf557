"""Run each mutant only against the tests that own its file (`mutation/owners.toml`).

A pytest plugin, loaded in every pytest run mutmut starts (`pytest_add_cli_args` in
pyproject.toml). It acts only inside a mutant's worker: mutmut names the mutant in
`MUTANT_UNDER_TEST` there, while its clean, forced-fail and coverage runs use other values
("", "fail", "stats"), which name no module and so keep every test. `python -m mutation`
switches it on with `MUTATION_TESTS=owners`; `--all-tests` sets `all`, and outside a mutation
run the variable is unset, so a plain pytest run is never narrowed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import pytest

from mutation.report import module_of

OWNERS_FILE = Path(__file__).with_name("owners.toml")
#: The switch `python -m mutation` sets: "owners" narrows, anything else runs every test.
SWITCH = "MUTATION_TESTS"


def load_owners(path: Path = OWNERS_FILE) -> dict[str, list[str]]:
    """Source file -> the test files and folders that judge its mutants."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    owners = data.get("owners", {})
    bad = [
        source
        for source, tests in owners.items()
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests)
    ]
    if bad:
        raise ValueError(f"{path}: each [owners] entry needs a list of test paths: {bad}")
    return {source: list(tests) for source, tests in owners.items()}


def source_of(mutant: str) -> str | None:
    """`system/db/jobs.py` for `system.db.jobs.x_claim__mutmut_3`; None for mutmut's own runs."""
    if "__mutmut_" not in mutant:
        return None
    return module_of(mutant).replace(".", "/") + ".py"


def owner_rank(nodeid: str, tests: Sequence[str]) -> int | None:
    """The position in `tests` of the first entry a test (pytest node id, relative to the
    root) lies in; None when it lies in none."""
    path = PurePosixPath(nodeid.split("::", 1)[0])
    for rank, test in enumerate(tests):
        if path == PurePosixPath(test) or PurePosixPath(test) in path.parents:
            return rank
    return None


def owner_tests(environ: Mapping[str, str], owners: Mapping[str, list[str]]) -> list[str] | None:
    """The owner tests to keep in this pytest run, or None to keep every test."""
    if environ.get(SWITCH) != "owners":
        return None
    source = source_of(environ.get("MUTANT_UNDER_TEST", ""))
    if source is None:
        return None
    return owners.get(source)


def mutant_worker(environ: Mapping[str, str]) -> bool:
    """Whether this pytest run is a mutant's, started by `python -m mutation`."""
    return environ.get(SWITCH) in ("owners", "all") and (
        source_of(environ.get("MUTANT_UNDER_TEST", "")) is not None
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """In a mutant's worker, a hung test ends the run: pytest-timeout's thread method.

    Its default signal method raises inside whatever the main thread runs, and a mutant that
    makes the event loop spin (a wait that never waits) runs callbacks there: asyncio logs
    the exception and spins on, until mutmut's CPU limit stops it after many minutes.
    """
    if mutant_worker(os.environ):
        config.option.timeout_method = "thread"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests that do not own the mutant's file and run the rest in the order
    `owners.toml` lists them (a mutant's worker only)."""
    tests = owner_tests(os.environ, load_owners())
    if tests is None:
        return
    ranked: list[tuple[int, int, pytest.Item]] = []
    dropped: list[pytest.Item] = []
    for position, item in enumerate(items):
        rank = owner_rank(item.nodeid, tests)
        if rank is None:
            dropped.append(item)
        else:
            ranked.append((rank, position, item))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # mutmut stops a mutant's run at its first failing test (-x), and each file lists its unit
    # tests before the slower ones that run whole apps: those first, a killed mutant costs
    # seconds. Within one entry the collection order stays.
    items[:] = [item for _rank, _position, item in sorted(ranked, key=lambda r: r[:2])]
