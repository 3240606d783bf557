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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from notebooks.reliability.failures import SuccessSummary
from notebooks.reliability.loadrun import LoadRun, figures
from notebooks.reliability.testcount import TestCount
from notebooks.reliability.timeutil import describe_seconds


@dataclass(frozen=True)
class Targets:
    """The targets (override any in a notebook's parameters)."""

    error_rate: float = 0.01
    task_success: float = 0.95
    mttd_s: float = 300.0
    breaker_p99_ms: float = 50.0


def _row(
    metric: str, target: str, measured: str, value: float | None, passed: bool | None, source: str
) -> dict[str, Any]:
    return {
        "metric": metric,
        "target": target,
        "measured": measured,
        "value": value,
        "passed": passed,
        "source": source,
    }


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
    rows = []
    load_figures = figures(load) if load is not None else {}

    rate = load_figures.get("error_rate")
    if _finite(rate):
        assert rate is not None
        rows.append(
            _row(
                "error rate",
                f"< {t.error_rate:.0%}",
                f"{rate:.2%}",
                rate,
                rate < t.error_rate,
                f"load run ({load.folder if load else ''})",
            )
        )
    else:
        rows.append(
            _row(
                "error rate",
                f"< {t.error_rate:.0%}",
                "not available: run nox -s load",
                None,
                None,
                "load run",
            )
        )

    task_rate = success.success_rate if success is not None else None
    if task_rate is not None:
        rows.append(
            _row(
                "background task success",
                f"> {t.task_success:.0%}",
                f"{task_rate:.2%} of {success.tasks:,} tasks" if success else "",
                task_rate,
                task_rate > t.task_success,
                "background_task_runs (first runs)",
            )
        )
    else:
        rows.append(
            _row(
                "background task success",
                f"> {t.task_success:.0%}",
                "not available: no background task runs",
                None,
                None,
                "background_task_runs",
            )
        )

    for label, summary_column, events_column in (
        ("MTTD: fault to breaker open", "mttd_open_s", "mttd_open_s"),
        ("MTTD: fault to alert", "mttd_alert_s", "mttd_alert_s"),
    ):
        value, scenario = _worst(chaos_summary, summary_column)
        source = f"chaos summary (worst: {scenario})" if value is not None else ""
        if value is None:
            value, scenario = _worst(detection, events_column)
            source = f"chaos events (worst: {scenario or 'generated'})" if value is not None else ""
        if value is None:
            value, scenario = _worst(journal_detection, events_column)
            source = f"chaos journal (worst: {scenario}{_basis(journal_detection, events_column)})"
        if value is not None:
            rows.append(
                _row(
                    label,
                    f"< {describe_seconds(t.mttd_s)}",
                    describe_seconds(value),
                    value,
                    value < t.mttd_s,
                    source,
                )
            )
        else:
            rows.append(
                _row(
                    label,
                    f"< {describe_seconds(t.mttd_s)}",
                    "not available: run nox -s chaos",
                    None,
                    None,
                    "chaos run",
                )
            )

    p99 = load_figures.get("breaker_rejection_p99_ms")
    source = "load run: import (breaker open)"
    if not _finite(p99):
        p99, scenario = _worst(chaos_summary, "rejection_p99_ms")
        source = f"chaos run, not under load (worst: {scenario})"
    if _finite(p99):
        assert p99 is not None
        ratio = load_figures.get("breaker_to_health_p99_ratio")
        extra = f" ({ratio:.2f}x GET /health)" if _finite(ratio) else ""
        rows.append(
            _row(
                "circuit breaker response p99",
                f"< {t.breaker_p99_ms:g} ms",
                f"{p99:.1f} ms{extra}",
                p99,
                p99 < t.breaker_p99_ms,
                source,
            )
        )
    else:
        rows.append(
            _row(
                "circuit breaker response p99",
                f"< {t.breaker_p99_ms:g} ms",
                "not available: run nox -s load",
                None,
                None,
                "load run",
            )
        )

    if tests is not None:
        if tests.all_passed is None:
            measured = f"{tests.collected:,} collected (no run: pass/fail unknown)"
        else:
            measured = (
                f"{tests.collected:,}: {tests.passed} passed, {tests.failed} failed, "
                f"{tests.errors} errors, {tests.skipped} skipped"
            )
        rows.append(
            _row(
                "tests",
                "all pass",
                measured,
                float(tests.collected),
                tests.all_passed,
                f"pytest ({tests.source})",
            )
        )
    else:
        rows.append(
            _row("tests", "all pass", "not available: no test report", None, None, "pytest")
        )

    if chaos_summary is not None and {"held", "total"} <= set(chaos_summary.columns):
        held = int(pd.to_numeric(chaos_summary["held"], errors="coerce").fillna(0).sum())
        total = int(pd.to_numeric(chaos_summary["total"], errors="coerce").fillna(0).sum())
        deviated = chaos_summary.loc[chaos_summary["verdict"] != "passed", "scenario"].astype(str)
        note = f" (not passed: {', '.join(deviated)})" if len(deviated) else ""
        rows.append(
            _row(
                "chaos hypotheses",
                "all hold",
                f"{held}/{total} held{note}",
                float(held),
                total > 0 and held == total,
                "chaos summary",
            )
        )
    else:
        rows.append(
            _row(
                "chaos hypotheses",
                "all hold",
                "not available: run nox -s chaos",
                None,
                None,
                "chaos summary",
            )
        )
    frame = pd.DataFrame(rows)
    return frame.astype({"value": "float64", "passed": "boolean"})


def verdict(passed: object) -> str:
    """`pass`, `FAIL` or `n/a` for a `passed` cell (True, False, None or NA)."""
    if passed is None or passed is pd.NA:
        return "n/a"
    return "pass" if bool(passed) else "FAIL"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics table for people: `metric`, `target`, `measured`, `result`, `source`."""
    out = table[["metric", "target", "measured"]].copy()
    out["result"] = [verdict(p) for p in table["passed"]]
    out["source"] = table["source"]
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
