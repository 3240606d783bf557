"""The files a run leaves in its own folder, and `latest`.

Each run writes into a folder of its own under the report folder (`--report-dir`, default
`reports/chaos`): `<report-dir>/<run id>/`, the id being the UTC start time, the seed, the
process id and a random suffix (`run_folder`), so runs started together, even in the same
second with the same seed, never share a file. When a run has written its report,
`<report-dir>/latest` is pointed at its folder (`point_latest`, an atomic replace of a
relative symlink): `latest` is the run that finished last, never one still being written.

- `journal.json`: the whole run in Chaos Toolkit's journal layout (see `journal()`): one
  experiment made of every scenario, its steady states, `run` and `rollbacks`, so CTK's
  reporting tools read it and chaoslib validates its experiment (which only the harness can
  run: `chaos.ctk`); plus our `seed`, `versions`, `git`, `exit_code`, and `journals`
  (each scenario's own journal).
- `journal-<scenario>.json`: each scenario's journal on its own (one experiment each).
- `summary.json`: per scenario the verdict, each hypothesis (promise, expected, observed,
  met) and the measured figures (MTTD, rejection p50/p99, error rates, task success, lost and
  duplicated counts), plus seed, versions and git commit.
- `report.html`: the run for a person to read (`chaos.html_report`), one self-contained page.
- `events.jsonl` is written while the run goes (`chaos.events`).
- `logs/service-<scenario>-N.log`: each service's output (`chaos.stack`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.engine import ScenarioResult

EXIT_CODES = {"passed": 0, "skipped": 0, "deviated": 1, "error": 2, "interrupted": 2,
              "data_lost": 3}  # fmt: skip
#: The run's verdict by exit code.
VERDICTS = {0: "passed", 1: "deviated", 2: "error", 3: "data_lost"}
#: The database backends as a person names them (a scenario may run on each).
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
#: The symlink in the report folder that names the newest finished run.
LATEST = "latest"


def run_folder(report_dir: Path, seed: int, started: datetime) -> Path:
    """Where a run started at `started` with `seed` writes (not created here).

    `<UTC start>-seed<seed>-<pid>-<4 hex>`: sorted by start time. The process id keeps two
    runs on one machine apart, the random part two machines sharing the folder.
    """
    stamp = started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return report_dir / f"{stamp}-seed{seed}-{os.getpid()}-{secrets.token_hex(2)}"


def report_dir_problem(report_dir: Path) -> str | None:
    """Why runs cannot be written under `report_dir` (None: they can), without creating it."""
    existing = report_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing}"
    latest = report_dir / LATEST
    if latest.exists() and not latest.is_symlink():
        return f"{latest} is not a symlink (the harness points it at the newest run)"
    return None


def point_latest(run: Path) -> None:
    """Point `latest` next to `run` at it: a new relative symlink renamed over the old one,
    so a reader sees the previous run or this one, never a missing or half-made link."""
    link = run.parent / LATEST
    staged = run.parent / f".{LATEST}-{run.name}"  # one per run: concurrent runs never clash
    staged.unlink(missing_ok=True)
    staged.symlink_to(run.name, target_is_directory=True)
    os.replace(staged, link)


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
        "verdict": VERDICTS[code],
        "scenarios": [
            {
                "name": r.name,
                "scenario": r.scenario.name,
                "backend": r.backend,
                "title": r.scenario.title,
                "fault": r.scenario.fault,
                "verdict": r.verdict,
                "reason": r.reason or None,
                "duration_s": r.duration_s,
                "hypotheses": [j.to_json() for j in r.judgements],
                "skipped_hypotheses": r.skipped,
                "held": sum(1 for j in r.judgements if j.met),
                "total": len(r.judgements),
                "figures": r.figures,
                "tasks": r.tasks.to_json() if r.tasks is not None else None,
            }
            for r in results
        ],
    }


def journal(results: list[ScenarioResult], meta: dict[str, Any], code: int) -> dict[str, Any]:
    """The `journal.json` document: the whole run as one journal in Chaos Toolkit's layout.

    The run is one experiment whose steady-state hypothesis is every scenario's probes and
    whose method and rollbacks are every scenario's activities, in the order they ran; each
    declared activity is named `<scenario>: <activity>` and carries `scenario`. The results
    follow CTK: `steady_states.before` / `after` gather each scenario's check before its
    fault / after its rollbacks (met when every scenario's was), `during` is each scenario's
    continuous check, and `run` / `rollbacks` are every activity's result in order.

    Beside CTK's keys: the run's `seed`, `versions`, `git`, `exit_code`, ...; `skipped` (the
    scenarios that did not run, with why); `journal_files` (each scenario's journal,
    `journal-<scenario>.json`); and `journals`, those journals themselves, which is what the
    notebooks read per scenario.
    """
    ran = [r for r in results if r.verdict != "skipped"]
    statuses = {r.journal.get("status") for r in results}
    status = "completed"
    if "interrupted" in statuses or meta.get("interrupted"):
        status = "interrupted"
    elif "failed" in statuses or code == 2:
        status = "failed"
    elif results and not ran:
        status = "aborted"  # nothing could run here
    steady = {
        "before": _combined_check(results, "before"),
        "after": _combined_check(results, "after"),
        "during": [
            {**check, "scenario": r.name, "probes": _tagged(r.name, check.get("probes"))}
            for r in results
            for check in (r.journal.get("steady_states") or {}).get("during") or []
        ],
    }
    return {
        "chaoslib-version": None,  # as in each scenario's (`chaos.engine._journal_head`)
        "platform": platform.platform(),
        "node": platform.node(),
        "experiment": _experiment(results),
        "start": meta.get("started"),
        "end": meta.get("finished"),
        "duration": meta.get("duration_s"),
        "status": status,
        "deviated": any(r.journal.get("deviated") for r in results),
        "steady_states": steady,
        "run": [e for r in results for e in _tagged(r.name, r.journal.get("run"))],
        "rollbacks": [e for r in results for e in _tagged(r.name, r.journal.get("rollbacks"))],
        **meta,
        "exit_code": code,
        "skipped": [
            {"scenario": r.name, "reason": r.reason} for r in results if r.verdict == "skipped"
        ],
        "journal_files": [f"journal-{r.name}.json" for r in results],
        "journals": [r.journal | _provenance(meta) for r in results],
    }


def _experiment(results: list[ScenarioResult]) -> dict[str, Any]:
    """Every scenario's experiment as one (activities renamed `<scenario>: <name>`)."""
    parts = [(r.name, r.journal.get("experiment") or r.scenario.to_json()) for r in results]
    tags: list[str] = []
    for _, experiment in parts:
        tags += [t for t in experiment.get("tags", []) if t not in tags]
    return {
        "version": "1.0.0",
        "title": f"bgg-reliability chaos run: {', '.join(r.name for r in results) or 'nothing'}",
        "description": (
            "Every scenario of the run as one experiment, in the order they ran: the "
            "steady-state hypothesis is each scenario's probes, the method and rollbacks "
            "each scenario's activities, named `<scenario>: <activity>`. Each scenario's "
            "own journal is in `journal-<scenario>.json` (and in `journals`)."
        ),
        "tags": tags,
        "steady-state-hypothesis": {
            "title": "Each scenario's steady state holds before its fault and after recovery",
            "probes": [
                _declared(name, probe)
                for name, experiment in parts
                for probe in experiment["steady-state-hypothesis"]["probes"]
            ],
        },
        "method": [_declared(name, a) for name, e in parts for a in e.get("method", [])],
        "rollbacks": [_declared(name, a) for name, e in parts for a in e.get("rollbacks", [])],
        "dry": None,
    }


def _declared(scenario: str, activity: dict[str, Any]) -> dict[str, Any]:
    return {**activity, "name": f"{scenario}: {activity['name']}", "scenario": scenario}


def _tagged(scenario: str, entries: Any) -> list[dict[str, Any]]:
    """Activity results of one scenario, with the activity declared as in `_experiment`."""
    return [
        {**entry, "activity": _declared(scenario, entry["activity"]), "scenario": scenario}
        for entry in entries or []
    ]


def _combined_check(results: list[ScenarioResult], phase: str) -> dict[str, Any] | None:
    checks = [
        (r.name, check)
        for r in results
        if (check := (r.journal.get("steady_states") or {}).get(phase)) is not None
    ]
    if not checks:
        return None
    return {
        "steady_state_met": all(c.get("steady_state_met") for _, c in checks),
        "probes": [p for name, c in checks for p in _tagged(name, c.get("probes"))],
    }


def _provenance(meta: dict[str, Any]) -> dict[str, Any]:
    return {"versions": meta.get("versions"), "git": meta.get("git"), "run_seed": meta.get("seed")}


def write(
    report_dir: Path,
    results: list[ScenarioResult],
    meta: dict[str, Any],
    code: int,
    *,
    with_page: bool = True,
) -> Path | None:
    """Write `journal.json`, `journal-<scenario>.json`, `summary.json` and (`with_page`)
    `report.html` into the run's folder `report_dir`; `run_id` in them is the folder's name.

    Returns the page's path, or None when it was not asked for or could not be made: the page
    is a view of the JSON files, so a failure to draw it is reported (stderr, and
    `report-error.txt` with the traceback) but neither loses the JSON nor changes the run's
    exit code.
    """
    meta = {"run_id": report_dir.name, **meta}
    _dump(report_dir / "journal.json", journal(results, meta, code))
    for result in results:
        _dump(report_dir / f"journal-{result.name}.json", result.journal | _provenance(meta))
    document = summary(results, meta, code)
    _dump(report_dir / "summary.json", document)
    return page(report_dir, document) if with_page else None


def page(report_dir: Path, document: dict[str, Any]) -> Path | None:
    """Write `report.html` for the `summary.json` `document`; None (and why, on stderr and in
    `report-error.txt`) when it could not be made."""
    try:
        from chaos import html_report  # jinja2 and matplotlib: the `chaos` extra

        # What summary.json holds, not the objects it was made of: the page shows the file.
        return html_report.write(report_dir, json.loads(json.dumps(document, default=str)))
    except Exception as exc:  # any failure to draw must leave the run's verdict as it is
        with contextlib.suppress(OSError):
            (report_dir / "report-error.txt").write_text(
                "".join(traceback.format_exception(exc)), encoding="utf-8"
            )
        print(
            f"warning: {report_dir / 'report.html'} not written ({type(exc).__name__}: {exc}); "
            f"the JSON files are complete, the traceback is in {report_dir}/report-error.txt",
            file=sys.stderr,
            flush=True,
        )
        return None


def _dump(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
