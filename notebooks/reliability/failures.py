"""The failure analysis: everything `failure_analysis.ipynb` shows, from `TaskTables`.

`analyse_failures` runs the aggregate queries (on PostgreSQL a few at a time, on separate
connections: they are independent and each is mostly one table scan) and derives what the
notebook shows from their small results: failure classes, message patterns, success rates
against the target, duration summaries.

Background task success is measured on the runs table: the share of tasks whose first run
(`trigger = 'initial'`, its own retries included) succeeded, per time bucket and overall,
against the spec's 95 %; "eventual" success also counts a task whose first run failed but a
later automatic or manual retry succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from notebooks.reliability.errortypes import classify
from notebooks.reliability.messages import message_patterns
from notebooks.reliability.tables import Overview, TaskTables
from notebooks.reliability.timeutil import bucket_label, bucket_seconds, describe_seconds

#: The spec's target for background task success.
SUCCESS_TARGET = 0.95


def with_failure_class(frame: pd.DataFrame, column: str = "error_type") -> pd.DataFrame:
    """`frame` with a `failure_class` column (`transient` / `permanent`) from `column`."""
    out = frame.copy()
    out["failure_class"] = out[column].map(lambda v: classify(None if pd.isna(v) else str(v)))
    return out


def success_by_bucket(
    runs: pd.DataFrame, *, target: float = SUCCESS_TARGET, trigger: str | None = "initial"
) -> pd.DataFrame:
    """Task success per time bucket from `TaskTables.run_outcomes`.

    Counts the runs of `trigger` (None: every run). Columns `bucket`, `runs`, `successes`,
    `failures`, `success_rate` (NaN for a bucket without runs), `meets_target`.
    """
    columns = ["bucket", "runs", "successes", "failures", "success_rate", "meets_target"]
    selected = runs if trigger is None else runs[runs["trigger"] == trigger]
    if selected.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
        empty["bucket"] = pd.Series(dtype=runs["bucket"].dtype if "bucket" in runs else "object")
        return empty.astype({"success_rate": "float64", "meets_target": "boolean"})
    table = selected.pivot_table(
        index="bucket", columns="outcome", values="runs", aggfunc="sum", fill_value=0
    )
    successes = table["success"] if "success" in table else pd.Series(0, index=table.index)
    failures = table["failure"] if "failure" in table else pd.Series(0, index=table.index)
    out = pd.DataFrame(
        {"successes": successes.astype("int64"), "failures": failures.astype("int64")}
    )
    out["runs"] = out["successes"] + out["failures"]
    out["success_rate"] = out["successes"] / out["runs"].where(out["runs"] > 0)
    out["meets_target"] = (out["success_rate"] > target).astype("boolean")
    out.loc[out["success_rate"].isna(), "meets_target"] = pd.NA
    out = out.reset_index()
    return out[columns]


@dataclass(frozen=True)
class SuccessSummary:
    """Background task success over the whole window."""

    tasks: int  # first runs
    first_run_successes: int
    recovered: int  # first run failed, a later retry succeeded
    retries: int  # automatic and manual re-runs
    retry_successes: int
    target: float = SUCCESS_TARGET

    @property
    def success_rate(self) -> float | None:
        """Share of tasks whose first run succeeded (the headline figure)."""
        return self.first_run_successes / self.tasks if self.tasks else None

    @property
    def eventual_success_rate(self) -> float | None:
        """Share of tasks that succeeded in the end, retries included."""
        return (self.first_run_successes + self.recovered) / self.tasks if self.tasks else None

    @property
    def meets_target(self) -> bool | None:
        """Whether the headline rate reaches the target (None without runs)."""
        rate = self.success_rate
        return None if rate is None else rate > self.target

    def table(self) -> pd.DataFrame:
        """The summary as a two-column table for a notebook."""

        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2%}"

        return pd.DataFrame(
            {
                "measure": [
                    "tasks (first runs)",
                    "succeeded on the first run",
                    "success rate (first run)",
                    f"target (> {self.target:.0%})",
                    "recovered by a later retry",
                    "success rate (eventually)",
                    "retries run (automatic + manual)",
                    "retries that succeeded",
                ],
                "value": [
                    f"{self.tasks:,}",
                    f"{self.first_run_successes:,}",
                    pct(self.success_rate),
                    {True: "met", False: "missed", None: "n/a"}[self.meets_target],
                    f"{self.recovered:,}",
                    pct(self.eventual_success_rate),
                    f"{self.retries:,}",
                    f"{self.retry_successes:,}",
                ],
            }
        )


def success_summary(totals: pd.DataFrame, *, target: float = SUCCESS_TARGET) -> SuccessSummary:
    """`SuccessSummary` from `TaskTables.run_totals`. Superseded runs (their game was
    deleted or re-imported meanwhile) are neither successes nor failures: not counted."""
    judged = totals[totals["outcome"] != "superseded"]
    first = judged[judged["trigger"] == "initial"]
    retries = judged[judged["trigger"] != "initial"]
    return SuccessSummary(
        tasks=int(first["runs"].sum()),
        first_run_successes=int(first.loc[first["outcome"] == "success", "runs"].sum()),
        recovered=int(first["recovered"].sum()),
        retries=int(retries["runs"].sum()),
        retry_successes=int(retries.loc[retries["outcome"] == "success", "runs"].sum()),
        target=target,
    )


def duration_summary(quantiles: pd.Series, *, what: str = "duration") -> pd.DataFrame:
    """p50 / p90 / p99 / max of a quantile series (seconds), for people and machines."""
    points = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
    values: list[float | None] = []
    for q in points.values():
        values.append(
            float(np.interp(q, quantiles.index, quantiles.to_numpy())) if len(quantiles) else None
        )
    return pd.DataFrame(
        {
            "statistic": [f"{what} {name}" for name in points],
            "seconds": pd.Series(values, dtype="float64"),
            "readable": [describe_seconds(v) for v in values],
        }
    )


def backlog_table(backlog: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Unresolved failures per task type and error type with their class and the age of the
    oldest one (`TaskTables.backlog` plus `failure_class`, `oldest_age`)."""
    out = with_failure_class(backlog)
    ages = (now - out["oldest"]).dt.total_seconds()
    out["oldest_age"] = [describe_seconds(a) if pd.notna(a) else "n/a" for a in ages]
    return out


@dataclass
class FailureAnalysis:
    """The results behind `failure_analysis.ipynb` (all small frames), with query timings."""

    overview: Overview
    bucket: int
    over_time: pd.DataFrame
    error_types: pd.DataFrame
    messages: pd.DataFrame
    retries: pd.DataFrame
    games: pd.DataFrame
    backlog: pd.DataFrame
    backlog_ages: pd.DataFrame
    backlog_age_quantiles: pd.Series
    resolution_bins: pd.DataFrame
    resolution_quantiles: pd.Series
    quality: pd.DataFrame
    runs: pd.DataFrame
    success: pd.DataFrame
    success_total: SuccessSummary
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Wall time of the whole analysis."""
        return self.timings.get("total", float("nan"))

    def overview_table(self, *, since: str = "", until: str = "") -> pd.DataFrame:
        """The headline figures as a two-column table."""
        o = self.overview
        return pd.DataFrame(
            {
                "measure": [
                    "source",
                    "window",
                    "failure rows",
                    "unresolved",
                    "first failure",
                    "last failure",
                    "task runs",
                    "time bucket",
                    "analysis time",
                ],
                "value": [
                    o.source,
                    _window(since, until),
                    f"{o.failures:,}",
                    f"{o.unresolved:,}",
                    "n/a" if o.first is None else f"{o.first:%Y-%m-%d %H:%M:%S} UTC",
                    "n/a" if o.last is None else f"{o.last:%Y-%m-%d %H:%M:%S} UTC",
                    "no runs table" if o.runs is None else f"{o.runs:,}",
                    bucket_label(self.bucket),
                    describe_seconds(self.seconds),
                ],
            }
        )

    def summary(self) -> dict[str, object]:
        """The headline figures for `failure_summary.json`."""
        resolution = duration_summary(self.resolution_quantiles)
        return {
            "failures": self.overview.failures,
            "unresolved": self.overview.unresolved,
            "runs": self.overview.runs,
            "task_success_rate": self.success_total.success_rate,
            "eventual_success_rate": self.success_total.eventual_success_rate,
            "target": self.success_total.target,
            "time_to_resolution_s": {
                str(k): (None if pd.isna(v) else float(v))
                for k, v in zip(resolution["statistic"], resolution["seconds"], strict=True)
            },
            "bucket_s": self.bucket,
            "analysis_seconds": self.seconds,
            "timings": self.timings,
        }


def analyse_failures(
    tables: TaskTables,
    *,
    bucket: str | int = "auto",
    target: float = SUCCESS_TARGET,
    message_limit: int = 15,
    game_limit: int = 10,
    workers: int | None = None,
) -> FailureAnalysis:
    """Run every query of the failure analysis and derive the notebook's tables.

    `bucket` is a width (`"auto"`, `"1h"`, `"1d"`, seconds). `workers` queries run at once
    (default: 2 on PostgreSQL, 1 on SQLite, whose in-memory exports share one connection).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        begin = time.perf_counter()
        result = call()
        timings[name] = round(time.perf_counter() - begin, 4)
        return result

    overview: Overview = timed("overview", tables.overview)
    since = tables.window.since or overview.span[0]
    until = tables.window.until or overview.span[1]
    width = bucket_seconds(bucket, start=since, end=until)
    jobs: dict[str, Callable[[], Any]] = {
        "over_time": lambda: tables.failures_over_time(width),
        "error_types": tables.error_types,
        "messages": tables.message_groups,
        "retries": tables.retry_counts,
        "games": lambda: tables.top_games(game_limit),
        "backlog": tables.backlog,
        "backlog_ages": tables.backlog_age_bins,
        "resolution": tables.resolution_bins,
        "quality": tables.quality,
        "runs": lambda: tables.run_outcomes(width),
        "run_totals": tables.run_totals,
    }
    if workers is None:
        workers = 2 if tables.dialect.name == "postgresql" else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {name: pool.submit(timed, name, job) for name, job in jobs.items()}
            results = {name: future.result() for name, future in futures.items()}
    else:
        results = {name: timed(name, job) for name, job in jobs.items()}
    groups, fraction = results["messages"]
    timings["total"] = round(time.perf_counter() - started, 4)
    return FailureAnalysis(
        overview=overview,
        bucket=width,
        over_time=results["over_time"],
        error_types=with_failure_class(results["error_types"]),
        messages=message_patterns(groups, fraction=fraction, limit=message_limit),
        retries=results["retries"],
        games=results["games"],
        backlog=backlog_table(results["backlog"], pd.Timestamp(tables.now)),
        backlog_ages=results["backlog_ages"],
        backlog_age_quantiles=tables.backlog_age_quantiles(),
        resolution_bins=results["resolution"],
        resolution_quantiles=tables.resolution_quantiles(),
        quality=results["quality"],
        runs=results["runs"],
        success=success_by_bucket(results["runs"], target=target),
        success_total=success_summary(results["run_totals"], target=target),
        timings=timings,
    )


def _window(since: str, until: str) -> str:
    """The time window as a person reads it (`all rows` when it is unbounded)."""
    if not since and not until:
        return "all rows (no since / until)"
    if not until:
        return f"from {since}"
    if not since:
        return f"until {until}"
    return f"{since} to {until}"
