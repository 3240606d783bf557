"""mutation.owners: a mutant's run keeps only its file's owner tests, and nothing else changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mutation import owners
from mutation.selection import mutated_patterns

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
JOBS_MUTANT = "system.db.jobs.x_claim__mutmut_3"
POOL_MUTANT = "system.tasks.pool.xǁJobPoolǁrenew_once__mutmut_6"


def test_the_source_file_is_read_from_a_mutant_name() -> None:
    assert owners.source_of(JOBS_MUTANT) == "system/db/jobs.py"
    assert owners.source_of(POOL_MUTANT) == "system/tasks/pool.py"


@pytest.mark.parametrize("name", ["", "stats", "fail", "list_all_tests", "mutant_generation"])
def test_mutmuts_own_runs_name_no_file(name: str) -> None:
    assert owners.source_of(name) is None


def test_a_test_is_owned_by_its_file_or_a_folder_above_it() -> None:
    rank = owners.owner_rank
    assert rank("tests/db/test_jobs.py::test_claim[sqlite]", ["tests/db/test_jobs.py"]) == 0
    assert rank("tests/db/test_jobs.py::test_claim", ["tests/db"]) == 0
    assert rank("tests/db/test_jobs_more.py::test_x", ["tests/db/test_jobs.py"]) is None
    assert rank("tests/dbx/test_jobs.py::test_x", ["tests/db"]) is None


def test_only_a_mutant_run_with_the_switch_on_is_narrowed() -> None:
    table = {"system/db/jobs.py": ["tests/db/test_jobs.py"]}
    on = {owners.SWITCH: "owners", "MUTANT_UNDER_TEST": JOBS_MUTANT}
    assert owners.owner_tests(on, table) == ["tests/db/test_jobs.py"]
    assert owners.owner_tests({**on, owners.SWITCH: "all"}, table) is None
    assert owners.owner_tests({"MUTANT_UNDER_TEST": JOBS_MUTANT}, table) is None
    assert owners.owner_tests({**on, "MUTANT_UNDER_TEST": "stats"}, table) is None
    # a file without an entry keeps every test
    assert owners.owner_tests({**on, "MUTANT_UNDER_TEST": POOL_MUTANT}, table) is None


def test_every_mutated_file_has_owners_and_every_owner_exists() -> None:
    table = owners.load_owners()
    mutated = {
        path.relative_to(REPO_ROOT).as_posix()
        for pattern in mutated_patterns(REPO_ROOT / "pyproject.toml")
        for path in REPO_ROOT.glob(pattern)
        if path.suffix == ".py" and path.name != "__init__.py"  # __init__.py holds no function
    }
    assert "system/db/jobs.py" in mutated
    assert mutated <= set(table)
    missing = [t for tests in table.values() for t in tests if not (REPO_ROOT / t).exists()]
    assert missing == []


def test_an_entry_without_tests_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "owners.toml"
    bad.write_text('[owners]\n"system/db/jobs.py" = []\n', encoding="utf-8")
    with pytest.raises(ValueError, match="list of test paths"):
        owners.load_owners(bad)


def _run_pytest(tmp_path: Path, env: dict[str, str]) -> str:
    # A real pytest run with the plugin loaded, as mutmut's worker runs it: one test in a file
    # that owns jobs.py's mutants, one in a file that does not.
    for name in ("tests/db/test_jobs.py", "tests/api/test_games.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("def test_one():\n    pass\n", encoding="utf-8")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "mutation.owners"),
            *("-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path), "tests"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_mutant_worker_runs_only_the_owner_tests(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k not in (owners.SWITCH, "MUTANT_UNDER_TEST")}
    narrowed = _run_pytest(
        tmp_path, {**base, owners.SWITCH: "owners", "MUTANT_UNDER_TEST": JOBS_MUTANT}
    )
    assert "1 passed, 1 deselected" in narrowed
    # --all-tests, and the coverage run inside a narrowed mutation run, keep both
    assert "2 passed" in _run_pytest(
        tmp_path, {**base, owners.SWITCH: "all", "MUTANT_UNDER_TEST": JOBS_MUTANT}
    )
    assert "2 passed" in _run_pytest(
        tmp_path, {**base, owners.SWITCH: "owners", "MUTANT_UNDER_TEST": "stats"}
    )


def test_a_test_ranks_by_the_first_owner_entry_it_lies_in() -> None:
    tests = ["tests/db/test_jobs.py", "tests/tasks", "tests/tasks/test_pool.py"]
    assert owners.owner_rank("tests/db/test_jobs.py::test_a", tests) == 0
    assert owners.owner_rank("tests/tasks/test_pool.py::test_b[x]", tests) == 1
    assert owners.owner_rank("tests/api/test_games.py::test_c", tests) is None


def test_a_mutant_worker_runs_the_owner_tests_in_the_order_owners_lists_them(
    tmp_path: Path,
) -> None:
    # jobs.py's owners list tests/db/test_jobs.py before tests/tasks/test_pool.py; collected
    # the other way round (pytest collects in the order it is given), the plugin reorders.
    for name in ("tests/tasks/test_pool.py", "tests/db/test_jobs.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("def test_one():\n    pass\n", encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in (owners.SWITCH, "MUTANT_UNDER_TEST")}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-v", "-p", "mutation.owners"),
            *("-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path)),
            *("tests/tasks/test_pool.py", "tests/db/test_jobs.py"),
        ],
        cwd=tmp_path,
        env={**base, owners.SWITCH: "owners", "MUTANT_UNDER_TEST": JOBS_MUTANT},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [line.split("::")[0] for line in done.stdout.splitlines() if " PASSED" in line]
    assert ran == ["tests/db/test_jobs.py", "tests/tasks/test_pool.py"]


@pytest.mark.parametrize(
    ("switch", "mutant", "method"),
    [("owners", JOBS_MUTANT, "thread"), ("all", JOBS_MUTANT, "thread"), ("owners", "stats", "")],
)
def test_a_mutant_worker_ends_a_hung_test_from_a_thread(
    tmp_path: Path, switch: str, mutant: str, method: str
) -> None:
    # A file that owns jobs.py's mutants, so the owners switch keeps its test.
    (tmp_path / "tests/db").mkdir(parents=True)
    (tmp_path / "tests/db/test_jobs.py").write_text(
        "def test_method(request):\n"
        "    print('METHOD=' + str(request.config.getvalue('timeout_method') or ''))\n",
        encoding="utf-8",
    )
    base = {k: v for k, v in os.environ.items() if k not in (owners.SWITCH, "MUTANT_UNDER_TEST")}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-s", "-p", "mutation.owners"),
            *("-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path), "tests"),
        ],
        cwd=tmp_path,
        env={**base, owners.SWITCH: switch, "MUTANT_UNDER_TEST": mutant},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"METHOD={method}\n" in done.stdout
