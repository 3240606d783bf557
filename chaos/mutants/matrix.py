"""The mutant x scenario matrix: exit code, `chaos-matrix.json`, `chaos-matrix.md`.

A cell is `caught` (the scenario deviated or lost data: the failed hypotheses say how),
`not caught` (it passed), `error` (it could not judge) or `not run` (not one of the
scenarios that mutant is meant for).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaos.mutants.catalogue import KNOWN_BLIND
from chaos.mutants.run import MutantResult

NOT_RUN = "not run"


def exit_code(results: list[MutantResult]) -> int:
    """0 every mutant caught, 1 one survived, 2 one could not be judged (harness error)."""
    if any(r.harness_failed for r in results):
        return 2
    return 0 if all(r.caught for r in results) else 1


def columns(results: list[MutantResult]) -> list[str]:
    """The scenarios any mutant ran, in first-seen order."""
    return list(dict.fromkeys(name for result in results for name in result.mutant.scenarios))


def status(result: MutantResult) -> str:
    """The row's verdict: caught, SURVIVED or ERROR."""
    if result.caught:
        return "caught"
    return "ERROR" if result.harness_failed else "SURVIVED"


def to_json(results: list[MutantResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The matrix as plain data."""
    code = exit_code(results)
    return {
        **meta,
        "exit_code": code,
        "caught": sum(r.caught for r in results),
        "mutants": len(results),
        "scenarios": columns(results),
        "rows": [
            {
                "mutant": r.mutant.name,
                "kind": r.mutant.kind,
                "bug": r.mutant.bug,
                "hypotheses": list(r.mutant.hypotheses),
                "status": status(r),
                "exit_code": r.exit_code,
                "duration_s": r.duration_s,
                "error": r.error,
                "run_dir": r.run_dir,
                "cells": {name: cell.to_json() for name, cell in r.cells.items()},
            }
            for r in results
        ],
        "known_blind": KNOWN_BLIND,
    }


def to_markdown(results: list[MutantResult], meta: dict[str, Any]) -> str:
    """The matrix as a Markdown page."""
    names = columns(results)
    code = exit_code(results)
    lines = [
        "# Chaos mutants: which scenario catches which bug",
        "",
        f"`{meta['command']}`: {sum(r.caught for r in results)} of {len(results)} mutants "
        f"caught, exit {code}; seed {meta['seed']}, {meta['duration_s']:.0f} s, "
        f"git {meta.get('git') or 'unknown'}, {meta['finished']}.",
        "",
        "| mutant | kind | bug | " + " | ".join(f"`{n}`" for n in names) + " | result |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for r in results:
        cells = []
        for name in names:
            cell = r.cells.get(name)
            if cell is None:
                cells.append(NOT_RUN)
            elif cell.outcome == "caught":
                cells.append(f"**caught** ({cell.detail})")
            elif cell.outcome == "error":
                cells.append(f"error: {cell.verdict} {cell.detail}".strip())
            else:
                cells.append(f"{cell.outcome} ({cell.detail})" if cell.detail else cell.outcome)
        row = [f"`{r.mutant.name}`", r.mutant.kind, r.mutant.bug, *cells, status(r)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    lines += ["", "Known blind spots (not run: no scenario can observe them from outside):", ""]
    lines += [f"- `{name}`: {why}" for name, why in KNOWN_BLIND.items()]
    return "\n".join(lines) + "\n"


def write(folder: Path, results: list[MutantResult], meta: dict[str, Any]) -> list[Path]:
    """Write `chaos-matrix.json` and `chaos-matrix.md` into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    as_json = folder / "chaos-matrix.json"
    as_md = folder / "chaos-matrix.md"
    as_json.write_text(json.dumps(to_json(results, meta), indent=2) + "\n")
    as_md.write_text(to_markdown(results, meta))
    return [as_json, as_md]
