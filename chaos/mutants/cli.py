"""`python -m chaos mutants [NAME ...] [--seed N] [--report-dir D] [--timeout S]`.

Applies each catalogued mutant (`chaos.mutants.catalogue`) to a throw-away copy of the
service, runs the scenarios that should catch it, and writes the matrix mutant x scenario
to `D/chaos-matrix.md` and `.json` (default `reports/mutants/`).

Exit codes: 0 every mutant was caught by at least one of its scenarios, 1 one survived,
2 bad arguments or a harness error (a catalogue entry that no longer applies to `system/`
is named, before anything runs; a run that could not judge its mutant).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from chaos import scenarios
from chaos.arguments import bounded_float
from chaos.events import utc_now
from chaos.meta import git_commit
from chaos.mutants import matrix
from chaos.mutants.catalogue import CATALOGUE, NAMES, Mutant
from chaos.mutants.run import MutantResult, run_mutant
from chaos.mutants.tree import PatchError, check_applies
from chaos.service import REPO_ROOT
from chaos.ui import Terminal, stderr

STYLE = {"caught": "green", "SURVIVED": "bold red", "ERROR": "magenta"}
OUTCOME_STYLE = {"caught": "green", "not caught": "red", "error": "magenta"}


_timeout = bounded_float(10, 3600, include_low=True, out_of_range="must be 10-3600 seconds: {text}")


def add_parser(commands: Any, types: dict[str, Any]) -> None:
    """Add `mutants` to the `python -m chaos` sub-commands (`types`: cli's argument types)."""
    mutants = commands.add_parser(
        "mutants",
        help="apply each catalogued code mutant to a throw-away copy of the service and run "
        "the scenarios that should catch it",
    )
    mutants.add_argument("names", nargs="*", metavar="NAME",
                         help=f"mutants (default: all): {', '.join(NAMES)}")  # fmt: skip
    mutants.add_argument("--seed", type=types["seed"], default=1, help="run seed (default 1)")
    mutants.add_argument(
        "--report-dir",
        type=types["report_dir"],
        default="reports/mutants",
        help="where the matrix and each mutant's chaos runs go (default reports/mutants)",
    )
    mutants.add_argument(
        "--timeout",
        type=_timeout,
        default=600.0,
        help="seconds one mutant's chaos run may take (default 600)",
    )


def _select(names: list[str]) -> list[Mutant]:
    """The mutants to run, each checked against the current `system/` (`PatchError`)."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown mutant {unknown[0]!r} (known: {', '.join(NAMES)})")
    chosen = [m for m in CATALOGUE if not names or m.name in names]
    for mutant in chosen:
        missing = [s for s in mutant.scenarios if s not in scenarios.NAMES]
        if missing:
            raise ValueError(f"mutant {mutant.name!r} names unknown scenario {missing[0]!r}")
        check_applies(mutant, REPO_ROOT)
    return chosen


def mutants_command(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """The `mutants` command."""
    try:
        chosen = _select(list(args.names))
    except (ValueError, PatchError) as exc:
        stderr(f"error: {exc}")
        return 2
    terminal = Terminal()
    results: list[MutantResult] = []
    started, wall = utc_now(), time.monotonic()
    commit = git_commit()  # the tree the mutants were made from: read before any run
    try:
        for index, mutant in enumerate(chosen, start=1):
            what = f"[{index}/{len(chosen)}] {mutant.name} ({mutant.kind}) -> " + ", ".join(
                mutant.scenarios
            )
            result = _run_one(terminal, what, mutant, args)
            results.append(result)
            terminal.line(f"{what}: {matrix.status(result)} in {result.duration_s:.0f} s"
                          + _why(result), STYLE[matrix.status(result)])  # fmt: skip
    except KeyboardInterrupt:
        stderr("interrupted: no matrix written")
        return 2
    command = "python -m chaos " + shlex.join(argv if argv is not None else sys.argv[1:])
    meta = {
        "command": command.strip(),
        "seed": args.seed,
        "finished": utc_now(),
        "started": started,
        "duration_s": round(time.monotonic() - wall, 1),
        "git": f"{(commit['commit'] or 'unknown')[:12]}{' (dirty)' if commit['dirty'] else ''}",
    }
    paths = matrix.write(args.report_dir, results, meta)
    code = matrix.exit_code(results)
    _table(terminal.console, results)
    terminal.line(f"exit {code}: {sum(r.caught for r in results)} of {len(results)} mutants "
                  f"caught; matrix in {paths[1]} and {paths[0].name}")  # fmt: skip
    return code


def _why(result: MutantResult) -> str:
    if result.caught:
        caught = [f"{c.scenario}: {c.detail}" for c in result.cells.values()
                  if c.outcome == "caught"]  # fmt: skip
        return f" ({'; '.join(caught)})"
    errors = [f"{c.scenario}: {c.verdict} {c.detail}" for c in result.cells.values()
              if c.outcome == "error"]  # fmt: skip
    why = result.error or "; ".join(errors) or "every one of its scenarios passed"
    return f" ({why}; see {result.run_dir})"


def _run_one(
    terminal: Terminal, what: str, mutant: Mutant, args: argparse.Namespace
) -> MutantResult:
    def run() -> MutantResult:
        return run_mutant(mutant, seed=args.seed, report_dir=args.report_dir, timeout=args.timeout)

    console = terminal.console
    if not console.is_terminal:
        terminal.line(f"{what}: running")
        return run()
    with console.status(f"{what}: running (chaos run, up to {args.timeout:g} s)"):
        return run()


def _table(console: Console, results: list[MutantResult]) -> None:
    """One row per mutant and scenario (the Markdown file has the full matrix)."""
    rows = [
        (r.mutant.name if index == 0 else "", r.mutant.kind if index == 0 else "", cell,
         matrix.status(r) if index == 0 else "")
        for r in results
        for index, cell in enumerate(r.cells.values())
    ]  # fmt: skip
    table = Table(title="mutant x scenario")
    for column in ("mutant", "kind", "scenario", "outcome", "failed hypotheses", "result"):
        table.add_column(column, no_wrap=column in ("mutant", "scenario"))
    for name, kind, cell, status in rows:
        table.add_row(
            name,
            kind,
            cell.scenario,
            f"[{OUTCOME_STYLE[cell.outcome]}]{cell.outcome}[/]",
            cell.detail,
            f"[{STYLE[status]}]{status}[/]" if status else "",
        )
    console.print(table)
