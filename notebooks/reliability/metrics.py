"""The spec's Success Metrics table, with measured values and pass/fail.

| metric | target | measured from |
|---|---|---|
| error rate | < 1 % | the load run (`reports/load/summary.json`, or its Locust CSVs) |
| background task success | > 95 % | the runs table: tasks whose first run succeeded |
| MTTD (breaker) | < 5 min | chaos summary `mttd_open_s`; events: fault -> breaker open; journal |
| MTTD (alert) | < 5 min | chaos summary `mttd_alert_s`; events: fault -> alert firing; journal |
| breaker response p99 | < 50 ms | load run `import (breaker open)`, else the chaos rejections |
| tests | all pass | a JUnit report; a collection only counts them (no pass/fail) |
| chaos hypotheses | all hold | the chaos summary |

Every target is strict, as the spec writes them ("< 1 %", "> 95 %"). A metric without data is
"not available" with the command that measures it, and neither passes nor fails. MTTD from a
journal alone runs from the first method action to the first probe that saw the breaker open
(or the alert), see `chaos.journal_detection`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from notebooks.reliability.failures import SuccessSummary
from notebooks.reliability.loadrun import LoadRun, figures
from notebooks.reliability.testcount import TestCount
from notebooks.reliability.timeutil import describe_seconds

#: The scenario name the data-set generator (`notebooks.generate`) gives its events.
GENERATED = "generated"


@dataclass(frozen=True)
class Targets:
    """The targets (override any in a notebook's parameters)."""

    error_rate: float = 0.01
    task_success: float = 0.95
    mttd_s: float = 300.0
    breaker_p99_ms: float = 50.0


#: One row of the Success Metrics table.
Row = dict[str, Any]


def _row(
    metric: str, target: str, measured: str, value: float | None, passed: bool | None, source: str
) -> Row:
    return {
        "metric": metric,
        "target": target,
        "measured": measured,
        "value": value,
        "passed": passed,
        "source": source,
    }


def _missing(metric: str, target: str, why: str, source: str) -> Row:
    """A metric without data: neither passes nor fails, and says how to measure it."""
    return _row(metric, target, f"not available: {why}", None, None, source)


def _finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _worst(frame: pd.DataFrame | None, column: str) -> tuple[float | None, str]:
    """The largest value of `column` and the scenario it came from."""
    if frame is None or column not in frame.columns:
        return None, ""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).all():
        return None, ""
    position = int(np.nanargmax(values))
    label = str(frame["scenario"].iloc[position]) if "scenario" in frame.columns else ""
    return float(values[position]), label


def _basis(frame: pd.DataFrame | None, column: str) -> str:
    """`; by probe end, an upper bound` when the worst journal value was read off a probe's end."""
    basis = column.replace("mttd_", "").replace("_s", "") + "_basis"
    if frame is None or basis not in frame.columns:
        return ""
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().all():
        return ""
    worst = frame[basis].iloc[int(np.nanargmax(values.to_numpy(dtype=float)))]
    return "; by probe end, an upper bound" if worst == "probe end" else ""


def _error_rate(load: LoadRun | None, load_figures: Mapping[str, float | None], t: Targets) -> Row:
    target = f"< {t.error_rate:.0%}"
    rate = load_figures.get("error_rate")
    if not _finite(rate):
        return _missing("error rate", target, "run nox -s load", "load run")
    assert rate is not None
    source = f"load run ({load.folder if load else ''})"
    return _row("error rate", target, f"{rate:.2%}", rate, rate < t.error_rate, source)


def _task_success(success: SuccessSummary | None, t: Targets) -> Row:
    metric, target = "background task success", f"> {t.task_success:.0%}"
    if success is None or success.success_rate is None:
        return _missing(metric, target, "no background task runs", "background_task_runs")
    rate = success.success_rate
    measured = f"{rate:.2%} of {success.tasks:,} tasks"
    source = "background_task_runs (first runs)"
    return _row(metric, target, measured, rate, rate > t.task_success, source)


def _mttd(
    label: str,
    column: str,
    chaos_summary: pd.DataFrame | None,
    detection: pd.DataFrame | None,
    journal_detection: pd.DataFrame | None,
    t: Targets,
) -> Row:
    """The worst detection time, from the first source that has one (summary, events, journal)."""
    target = f"< {describe_seconds(t.mttd_s)}"
    value, scenario = _worst(chaos_summary, column)
    source = f"chaos summary (worst: {scenario})"
    if value is None:
        value, scenario = _worst(detection, column)
        if scenario == GENERATED and detection is not None and "fault" in detection:
            # The generator's events are all one scenario: its faults tell them apart.
            by_fault = detection.assign(scenario=detection["fault"])
            source = f"data set events (worst: fault {_worst(by_fault, column)[1]})"
        else:
            source = f"chaos events (worst: {scenario or 'generated'})"
    if value is None:
        value, scenario = _worst(journal_detection, column)
        source = f"chaos journal (worst: {scenario}{_basis(journal_detection, column)})"
    if value is None:
        return _missing(label, target, "run nox -s chaos", "chaos run")
    return _row(label, target, describe_seconds(value), value, value < t.mttd_s, source)


def _breaker_p99(
    load_figures: Mapping[str, float | None], chaos_summary: pd.DataFrame | None, t: Targets
) -> Row:
    metric, target = "circuit breaker response p99", f"< {t.breaker_p99_ms:g} ms"
    p99: float | None = load_figures.get("breaker_rejection_p99_ms")
    source = "load run: import (breaker open)"
    if not _finite(p99):
        p99, scenario = _worst(chaos_summary, "rejection_p99_ms")
        source = f"chaos run, not under load (worst: {scenario})"
    if not _finite(p99):
        return _missing(metric, target, "run nox -s load", "load run")
    assert p99 is not None
    ratio = load_figures.get("breaker_to_health_p99_ratio")
    extra = f" ({ratio:.2f}x GET /health)" if _finite(ratio) else ""
    return _row(metric, target, f"{p99:.1f} ms{extra}", p99, p99 < t.breaker_p99_ms, source)


def _tests(tests: TestCount | None) -> Row:
    if tests is None:
        return _missing("tests", "all pass", "no test report", "pytest")
    if tests.all_passed is None:
        measured = f"{tests.collected:,} collected (no run: pass/fail unknown)"
    else:
        measured = (
            f"{tests.collected:,}: {tests.passed} passed, {tests.failed} failed, "
            f"{tests.errors} errors, {tests.skipped} skipped"
        )
    source = f"pytest ({tests.source})"
    return _row("tests", "all pass", measured, float(tests.collected), tests.all_passed, source)


def _hypotheses(chaos_summary: pd.DataFrame | None) -> Row:
    if chaos_summary is None or not {"held", "total"} <= set(chaos_summary.columns):
        return _missing("chaos hypotheses", "all hold", "run nox -s chaos", "chaos summary")
    held = int(pd.to_numeric(chaos_summary["held"], errors="coerce").fillna(0).sum())
    total = int(pd.to_numeric(chaos_summary["total"], errors="coerce").fillna(0).sum())
    deviated = chaos_summary.loc[chaos_summary["verdict"] != "passed", "scenario"].astype(str)
    note = f" (not passed: {', '.join(deviated)})" if len(deviated) else ""
    measured = f"{held}/{total} held{note}"
    passed = total > 0 and held == total
    return _row("chaos hypotheses", "all hold", measured, float(held), passed, "chaos summary")


def success_metrics(
    *,
    load: LoadRun | None = None,
    success: SuccessSummary | None = None,
    chaos_summary: pd.DataFrame | None = None,
    detection: pd.DataFrame | None = None,
    journal_detection: pd.DataFrame | None = None,
    tests: TestCount | None = None,
    targets: Targets | None = None,
) -> pd.DataFrame:
    """The Success Metrics table: `metric`, `target`, `measured`, `value`, `passed`
    (True/False, None when not available), `source`.

    MTTD comes from the first of: the chaos summary, `detection` (`chaos.detection_times`,
    from events), `journal_detection` (`chaos.journal_detection`, from a journal alone; a
    probe's end is when the harness had seen the breaker open, so that value is an upper
    bound, and the source says so)."""
    t = targets or Targets()
    load_figures = figures(load) if load is not None else {}
    rows = [
        _error_rate(load, load_figures, t),
        _task_success(success, t),
        _mttd(
            "MTTD: fault to breaker open",
            "mttd_open_s",
            chaos_summary,
            detection,
            journal_detection,
            t,
        ),
        _mttd(
            "MTTD: fault to alert", "mttd_alert_s", chaos_summary, detection, journal_detection, t
        ),
        _breaker_p99(load_figures, chaos_summary, t),
        _tests(tests),
        _hypotheses(chaos_summary),
    ]
    frame = pd.DataFrame(rows)
    return frame.astype({"value": "float64", "passed": "boolean"})


def verdict(passed: object) -> str:
    """`pass`, `FAIL` or `n/a` for a `passed` cell (True, False, None or NA)."""
    if passed is None or passed is pd.NA:
        return "n/a"
    return "pass" if bool(passed) else "FAIL"


#: The result of a metric without data, in the table for people.
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Context:
    """What a FAIL is explained with: the faults the data set switched on on purpose (the
    generator's outage drill), the task success behind its row, the test run."""

    drill_faults: tuple[str, ...] = ()
    success: SuccessSummary | None = None
    tests: TestCount | None = None


def drill_faults(events: pd.DataFrame | None) -> tuple[str, ...]:
    """The faults a generated data set switched on (its events, `chaos.load_chaos_events`),
    in order; () when the events are not the generator's (a chaos run's, or none)."""
    if events is None or events.empty or not {"kind", "scenario", "fault"} <= set(events):
        return ()
    faults = events[(events["kind"] == "fault") & (events["scenario"] == GENERATED)]
    names = [str(f) for f in faults["fault"].dropna() if str(f) != "all"]
    return tuple(dict.fromkeys(names))


def _why_task_success(context: Context) -> str:
    success = context.success
    eventually = success.eventual_success_rate if success is not None else None
    after = (
        f" {eventually:.0%} succeeded in the end, after retries." if eventually is not None else ""
    )
    if context.drill_faults:
        return (
            "Expected: this data set is the generator's outage drill, which breaks the image "
            f"CDN and BGG on purpose ({', '.join(context.drill_faults)}), so first runs fail "
            f"while a fault is on.{after} See “Background task success” below for when."
        )
    failed = success.tasks - success.first_run_successes if success is not None else 0
    return (
        f"{failed:,} first runs failed.{after} See “Background task success” below for when, "
        "and the failure analysis for why."
    )


def explain(row: Mapping[Hashable, Any], context: Context | None = None) -> str:
    """Why a metric's row says FAIL, in a sentence a person can act on ("" unless FAIL)."""
    if verdict(row.get("passed")) != "FAIL":
        return ""
    context = context or Context()
    metric = str(row["metric"])
    if metric == "background task success":
        return _why_task_success(context)
    if metric == "error rate":
        return (
            "More requests failed in the load run than the target allows; “Error rate” below "
            "shows when (the outage phase is shaded) and which requests."
        )
    if metric.startswith("MTTD"):
        return (
            f"Detection took longer than the target ({row['source']}); “Time to detection” "
            "below shows each fault."
        )
    if metric == "circuit breaker response p99":
        return (
            "Rejections by the open breaker were slower than the target; “Circuit breaker "
            "response” below compares them with GET /health."
        )
    if metric == "tests":
        tests = context.tests
        counts = f" {tests.failed} failed, {tests.errors} errors." if tests is not None else ""
        return f"Not every test passed.{counts} The JUnit report names them."
    if metric == "chaos hypotheses":
        return (
            f"A chaos scenario deviated ({row['measured']}); “Chaos hypotheses” below, and the "
            "chaos run's report.html, say which hypothesis and why."
        )
    return f"Missed the target ({row['target']})."


def display_table(table: pd.DataFrame, context: Context | None = None) -> pd.DataFrame:
    """The metrics table for people: `metric`, `target`, `measured`, `result` (pass, FAIL,
    not measured), `source`, and `why` (the explanation of each FAIL, see `explain`)."""
    out = table[["metric", "target", "measured"]].copy()
    out["result"] = [verdict(p).replace("n/a", NOT_MEASURED) for p in table["passed"]]
    out["source"] = table["source"]
    out["why"] = [explain(row, context) for row in table.astype(object).to_dict("records")]
    return out


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The metrics table as JSON-ready rows (NA and NaN become None)."""
    rows = []
    for row in table.astype(object).to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            missing = (
                value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
            )
            clean[str(key)] = None if missing else (bool(value) if key == "passed" else value)
        rows.append(clean)
    return rows


def task_verdict(
    success: SuccessSummary | None, *, target: float, context: Context | None = None
) -> pd.DataFrame:
    """The failure analysis's verdict: the background task success row of `display_table`
    (measured against `target`, its FAIL explained)."""
    measured = success_metrics(success=success, targets=Targets(task_success=target))
    table = display_table(measured, context)
    row = table[table["metric"] == "background task success"]
    return row.reset_index(drop=True)
