"""Runs one mutant: its scenarios through `python -m chaos run`, against the mutated copy.

Each mutant gets a `chaos run` process of its own (the same command a person would type, so
the same start-up, clean-up and exit codes), with `--service-source` pointing at the copy
for a code mutant, or `--service-env` for a configuration one. Its reports stay under
`<report-dir>/runs/<mutant>/` for reading why a mutant was (not) caught.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.mutants.catalogue import DATA_LOST, Mutant
from chaos.mutants.tree import mutated_copy
from chaos.service import REPO_ROOT, stop_group


@dataclass
class Cell:
    """One scenario's verdict on one mutant."""

    scenario: str
    #: caught (one of the mutant's hypotheses failed), not caught (passed, or deviated only
    #: on other hypotheses), error (the harness could not judge: a crash, a skip).
    outcome: str
    verdict: str
    #: The hypotheses that failed (what caught it), or why it could not be judged.
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        """Plain data for the matrix file."""
        return {"outcome": self.outcome, "verdict": self.verdict, "detail": self.detail}


@dataclass
class MutantResult:
    """What the scenarios made of one mutant."""

    mutant: Mutant
    cells: dict[str, Cell] = field(default_factory=dict)
    exit_code: int | None = None
    duration_s: float = 0.0
    run_dir: str = ""
    error: str = ""

    @property
    def caught(self) -> bool:
        """Whether at least one of its scenarios caught it."""
        return any(c.outcome == "caught" for c in self.cells.values())

    @property
    def harness_failed(self) -> bool:
        """Whether it could not be judged (not caught, and a run or a scenario errored)."""
        if self.caught:
            return False
        return bool(self.error) or any(c.outcome == "error" for c in self.cells.values())


def chaos_command(mutant: Mutant, seed: int, report_dir: Path, source: Path | None) -> list[str]:
    """The `python -m chaos run` command line for `mutant`."""
    command = [sys.executable, "-m", "chaos", "run", *mutant.scenarios,
               "--seed", str(seed), "--report-dir", str(report_dir)]  # fmt: skip
    if source is not None:
        command += ["--service-source", str(source)]
    for key, value in mutant.env.items():
        command += ["--service-env", f"{key}={value}"]
    return command


def run_mutant(mutant: Mutant, *, seed: int, report_dir: Path, timeout: float) -> MutantResult:
    """Apply `mutant` to a throw-away copy (code) and run its scenarios; never raises for the
    mutant's own failures (`PatchError` aside, which the caller checks before any run)."""
    result = MutantResult(mutant)
    runs = report_dir / "runs" / mutant.name
    runs.mkdir(parents=True, exist_ok=True)
    result.run_dir = str(runs)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        source = mutated_copy(mutant, REPO_ROOT, Path(tmp)) if mutant.kind == "code" else None
        command = chaos_command(mutant, seed, runs, source)
        log = runs / "chaos-run.log"
        result.exit_code, result.error = _run(command, log, timeout)
    result.duration_s = round(time.monotonic() - started, 1)
    summary = _latest_summary(runs)
    result.cells = _cells(mutant, summary, result.error or f"no summary: see {log}")
    return result


def _run(command: list[str], log: Path, timeout: float) -> tuple[int | None, str]:
    """(exit code, error) of `command`, its output in `log`; bounded by `timeout`."""
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            code = process.wait(timeout)
        except BaseException as exc:
            # Timeout or Ctrl-C: SIGTERM makes `chaos run` roll back and stop its services.
            stop_group(process, 60)
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            return None, f"chaos run did not end within {timeout:g} s"
    if code == 2:
        return code, f"chaos run: harness error (exit 2): {_last_line(log)}"
    return code, ""


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else "no output"


def _latest_summary(runs: Path) -> dict[str, Any] | None:
    path = runs / "latest" / "summary.json"
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary


def _cells(mutant: Mutant, summary: dict[str, Any] | None, error: str) -> dict[str, Cell]:
    entries = {e["name"]: e for e in (summary or {}).get("scenarios", [])}
    cells = {}
    for name in mutant.scenarios:
        entry = entries.get(name)
        if entry is None:
            cells[name] = Cell(name, "error", "missing", error)
            continue
        cells[name] = judge(mutant, name, entry)
    return cells


def judge(mutant: Mutant, scenario: str, entry: dict[str, Any]) -> Cell:
    """One scenario's `summary.json` entry, judged for `mutant`."""
    verdict = str(entry["verdict"])
    failed = [h["name"] for h in entry.get("hypotheses", []) if not h["met"]]
    if verdict == "data_lost":
        failed.append(DATA_LOST)
    if verdict not in ("passed", "deviated", "data_lost"):
        return Cell(scenario, "error", verdict, str(entry.get("reason") or ""))
    showing = [name for name in failed if name in mutant.hypotheses]
    if showing:
        return Cell(scenario, "caught", verdict, ", ".join(showing))
    # Failures of other hypotheses are shown, but they are not this bug.
    other = f"deviated only on {', '.join(failed)}" if failed else ""
    return Cell(scenario, "not caught", verdict, other)
