"""`python -m mutation [TARGET ...]`: run mutmut, then write reports/mutants/.

TARGETs are source files or folders (`system/resilience/breaker.py`) or mutmut name globs
(`system.resilience.breaker.xǁAsyncCircuitBreakerǁ_notify*`); none means every mutant, and
then mutmut re-tests only what changed since the last run (its state lives in `mutants/`).
Named targets are always re-tested. Each mutant runs only against the tests that own its file
(`mutation/owners.toml`); `--all-tests` runs it against every test that reaches it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from mutation import owners, report
from mutation.selection import BadTarget, mutant_globs, mutated_patterns

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "mutants"


def _mutmut(
    *args: str, capture: bool = False, tests: str = "owners"
) -> subprocess.CompletedProcess[str]:
    # The mutmut of this interpreter's environment (the nox session's), run from the root
    # where pyproject.toml holds its configuration. `tests` reaches mutation.owners, the
    # plugin that narrows each mutant's tests, through the environment mutmut's workers inherit.
    command = [str(Path(sys.executable).parent / "mutmut"), *args]
    return subprocess.run(  # noqa: S603 (our own arguments to our own venv's mutmut)
        command,
        cwd=ROOT,
        text=True,
        capture_output=capture,
        check=False,
        env={**os.environ, owners.SWITCH: tests},
    )


def _diff(name: str) -> str:
    shown = _mutmut("show", name, capture=True)
    # mutmut show prints a `# NAME: status` line before the diff
    return "\n".join(line for line in shown.stdout.splitlines() if not line.startswith("# "))


def main(argv: list[str] | None = None) -> int:
    """Run mutmut over the targets (or everything) and write the report; mutmut's exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mutation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="*", help="files, folders or mutant name globs")
    parser.add_argument(
        "--max-children",
        type=int,
        default=1,
        metavar="N",
        help="mutants tested at a time (default 1)",
    )
    parser.add_argument(
        "--all-tests",
        action="store_true",
        help="run each mutant against every test that reaches it, not only its file's owners "
        "(mutation/owners.toml): slower, to confirm survivors",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the last run's state"
    )
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports" / "mutants")
    args = parser.parse_args(argv)
    try:
        globs = mutant_globs(args.targets, mutated_patterns(ROOT / "pyproject.toml"), ROOT)
    except BadTarget as bad:
        parser.error(str(bad))
    if args.max_children < 1:
        parser.error("--max-children must be at least 1")

    last_command = STATE / "last-command.txt"
    if not args.report_only:
        STATE.mkdir(exist_ok=True)
        flags = ["--all-tests"] if args.all_tests else []
        posargs = [*flags, *args.targets]
        last_command.write_text(
            shlex.join(["nox", "-s", "mutants", *(["--", *posargs] if posargs else [])]),
            encoding="utf-8",
        )
        # mutmut refreshes its copies of tests/ and `also_copy` but never prunes them: a test
        # deleted here would still run there.
        config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        for name in ("tests", *config["tool"]["mutmut"]["also_copy"]):
            shutil.rmtree(STATE / name, ignore_errors=True)
        run = _mutmut(
            "run",
            "--max-children",
            str(args.max_children),
            *globs,
            tests="all" if args.all_tests else "owners",
        )
        if run.returncode:
            print(f"mutmut run exited {run.returncode}; no report written", file=sys.stderr)
            return run.returncode
    elif not STATE.is_dir():
        parser.error("--report-only: no mutants/ folder yet; run without it first")

    listed = _mutmut("results", "--all", "true", capture=True)
    statuses = report.parse_results(listed.stdout)
    built = report.build(statuses, report.load_equivalent(), _diff)
    command = last_command.read_text(encoding="utf-8") if last_command.exists() else "mutmut run"
    paths = report.write(built, args.report_dir, command)
    print()
    print(report.summary(built))
    print("report:", ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
