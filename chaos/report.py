"""The files a run leaves in the report folder.

- `journal.json`: the whole run in Chaos Toolkit's journal layout. One CTK journal describes
  one experiment, and a run is several, so its top level carries the run-wide CTK fields
  (`chaoslib-version`, `platform`, `node`, `start`, `end`, `duration`, `status`, `deviated`)
  plus our `seed`, `versions`, `git`, `exit_code`, and `journals`: one complete CTK journal per
  scenario (`experiment`, `steady_states` before/during/after, `run`, `rollbacks`, ...).
- `journal-<scenario>.json`: each of those journals on its own, so CTK's reporting tools
  (which read one experiment's journal) can render any scenario as it is.
- `summary.json`: per scenario the verdict, each hypothesis (promise, expected, observed,
  met) and the measured figures (MTTD, rejection p50/p99, error rates, task success, lost and
  duplicated counts), plus seed, versions and git commit.
- `events.jsonl` is written while the run goes (`chaos.events`).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from chaos.engine import HARNESS_VERSION, ScenarioResult

EXIT_CODES = {"passed": 0, "skipped": 0, "deviated": 1, "error": 2, "interrupted": 2,
              "data_lost": 3}  # fmt: skip


def exit_code(results: list[ScenarioResult]) -> int:
    """0 all held, 1 a hypothesis deviated, 2 harness error, 3 data lost (most severe wins)."""
    codes = [EXIT_CODES[r.verdict] for r in results]
    for code in (3, 2, 1):
        if code in codes:
            return code
    return 0


def summary(results: list[ScenarioResult], meta: dict[str, Any], code: int) -> dict[str, Any]:
    """The `summary.json` document."""
    return {
        **meta,
        "exit_code": code,
        "verdict": {0: "passed", 1: "deviated", 2: "error", 3: "data_lost"}[code],
        "scenarios": [
            {
                "name": r.name,
                "scenario": r.scenario.name,
                "backend": r.backend,
                "fault": r.scenario.fault,
                "verdict": r.verdict,
                "reason": r.reason or None,
                "duration_s": r.duration_s,
                "hypotheses": [j.to_json() for j in r.judgements],
                "held": sum(1 for j in r.judgements if j.met),
                "total": len(r.judgements),
                "figures": r.figures,
                "tasks": r.tasks.to_json() if r.tasks is not None else None,
            }
            for r in results
        ],
    }


def journal(results: list[ScenarioResult], meta: dict[str, Any], code: int) -> dict[str, Any]:
    """The combined `journal.json` document."""
    statuses = {r.journal.get("status") for r in results}
    status = "completed"
    if "interrupted" in statuses or meta.get("interrupted"):
        status = "interrupted"
    elif statuses & {"failed"} or code == 2:
        status = "failed"
    return {
        "chaoslib-version": HARNESS_VERSION,
        "platform": platform.platform(),
        "node": platform.node(),
        "experiment": {
            "version": "1.0.0",
            "title": "bgg-reliability chaos run",
            "description": "Every scenario of the run; each has its own journal in `journals`.",
            "tags": ["bgg-reliability"],
            "scenarios": [r.name for r in results],
        },
        "start": meta.get("started"),
        "end": meta.get("finished"),
        "duration": meta.get("duration_s"),
        "status": status,
        "deviated": any(r.journal.get("deviated") for r in results),
        **meta,
        "exit_code": code,
        "journals": [r.journal | _provenance(meta) for r in results],
    }


def _provenance(meta: dict[str, Any]) -> dict[str, Any]:
    return {"versions": meta.get("versions"), "git": meta.get("git"), "run_seed": meta.get("seed")}


def write(report_dir: Path, results: list[ScenarioResult], meta: dict[str, Any], code: int) -> None:
    """Write `journal.json`, `journal-<scenario>.json` and `summary.json`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in report_dir.glob("journal-*.json"):
        stale.unlink()
    _dump(report_dir / "journal.json", journal(results, meta, code))
    for result in results:
        _dump(report_dir / f"journal-{result.name}.json", result.journal | _provenance(meta))
    _dump(report_dir / "summary.json", summary(results, meta, code))


def _dump(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
