"""`python -m chaos verdict JOURNAL`: a Chaos Toolkit journal's outcome as an exit code.

`chaos run` (Chaos Toolkit) exits 0 when the steady state is *not* met before the method:
it logs "Steady state probe ... is not in the given tolerance", skips the method, and calls
the run "completed". So a pipeline that trusts its exit code passes an experiment that tried
nothing. This reads the journal it wrote and answers with the codes `python -m chaos run`
uses: 0 the steady state held before and after the method, 1 it deviated after the method,
2 nothing could be judged (not met before the method, a probe that failed before it, an
interrupted or aborted run, or a file that is not a journal).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _first_unmet(state: dict[str, Any]) -> str:
    for run in state.get("probes") or []:
        if not run.get("tolerance_met", False) or run.get("status") != "succeeded":
            return str((run.get("activity") or {}).get("name", "?"))
    return "?"


def verdict(journal: dict[str, Any]) -> tuple[int, str]:
    """`(exit code, one line)` for a Chaos Toolkit journal (see the module docstring)."""
    status = journal.get("status")
    states = journal.get("steady_states") or {}
    before = states.get("before")
    if status in ("interrupted", "aborted"):
        return 2, f"the run was {status}: nothing to judge"
    if isinstance(before, dict) and not before.get("steady_state_met"):
        return 2, (
            f"the steady state was not met before the method (probe {_first_unmet(before)!r}): "
            "nothing was tried, though Chaos Toolkit exits 0 for it"
        )
    if journal.get("deviated"):
        after = states.get("after") or {}
        return 1, f"deviated: probe {_first_unmet(after)!r} failed after the method"
    if status != "completed":
        return 2, f"the run ended {status!r}"
    if not isinstance(states.get("after"), dict):
        return 2, "no steady state was checked after the method"
    return 0, "the steady state held before and after the method"


def verdict_command(path: Path) -> int:
    """Print the verdict of the journal at `path` and return its exit code."""
    try:
        journal = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}")
        return 2
    if not isinstance(journal, dict) or "steady_states" not in journal:
        print(f"error: {path} is not a Chaos Toolkit journal")
        return 2
    code, line = verdict(journal)
    print(f"exit {code}: {line}")
    return code
