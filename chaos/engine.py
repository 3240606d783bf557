"""Runs one scenario: steady state before, method (with samplers running), rollbacks (always),
steady state after, then the set checker; and writes it all down in Chaos Toolkit's layout.

Verdicts, most severe first: `data_lost` (the set checker found lost, duplicated or
unexpected tasks: exit 3), `error` (an activity crashed: the harness failed, exit 2),
`deviated` (a hypothesis was not met: exit 1), `passed`, and `skipped` / `interrupted`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from chaos.checker import TaskCheck, check_jobs, check_tasks, read_spool
from chaos.context import Context, Skip
from chaos.core import Activity, Scenario, Tolerance
from chaos.events import utc_now

HARNESS_VERSION = "bgg-reliability-chaos 1.0"


@dataclass(frozen=True, slots=True)
class Judgement:
    """One hypothesis, checked once."""

    name: str
    phase: str  # before, during, method, after
    promise: str
    tolerance: str
    observed: Any
    met: bool

    def to_json(self) -> dict[str, Any]:
        """Plain data for the summary."""
        return {
            "name": self.name,
            "phase": self.phase,
            "promise": self.promise,
            "expected": self.tolerance,
            "observed": self.observed,
            "met": self.met,
        }


@dataclass
class ScenarioResult:
    """Everything one scenario produced."""

    name: str
    scenario: Scenario
    backend: str | None
    verdict: str = "passed"
    reason: str = ""
    judgements: list[Judgement] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    tasks: TaskCheck | None = None
    #: Hypotheses that could not be judged here (`Skip`), with why: reported, never "held".
    skipped: list[dict[str, str]] = field(default_factory=list)
    journal: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    interrupted: bool = False

    @property
    def failed_hypotheses(self) -> list[Judgement]:
        """The hypotheses that were not met."""
        return [j for j in self.judgements if not j.met]


def skipped(scenario: Scenario, name: str, reason: str, backend: str | None) -> ScenarioResult:
    """A scenario that could not run here, with why.

    Its journal's status is CTK's `aborted` (the experiment did not run to its end; here it
    never started) with `skipped: true` and the reason beside it.
    """
    result = ScenarioResult(name, scenario, backend, verdict="skipped", reason=reason)
    result.journal = _journal_head(scenario, name, 0) | {
        "status": "aborted",
        "deviated": False,
        "skipped": True,
        "reason": reason,
        "steady_states": {"before": None, "after": None, "during": []},
        "run": [],
        "rollbacks": [],
        "start": utc_now(),
        "end": utc_now(),
        "duration": 0.0,
    }
    return result


def _journal_head(scenario: Scenario, name: str, seed: int) -> dict[str, Any]:
    return {
        # chaoslib did not write the journal, so no chaoslib version: `versions.harness` says
        # what did. (chaostoolkit-reporting picks its template by parsing this as a semantic
        # version: the harness's name here made `chaos report` crash.)
        "chaoslib-version": None,
        "platform": platform.platform(),
        "node": platform.node(),
        "experiment": scenario.to_json(),
        "scenario": name,
        "seed": seed,
    }


class _Run:
    """The mutable state of one scenario run."""

    def __init__(self, scenario: Scenario, ctx: Context, backend: str | None) -> None:
        self.scenario = scenario
        self.ctx = ctx
        self.result = ScenarioResult(ctx.name, scenario, backend)
        self.errors: list[str] = []

    def judge(self, activity: Activity, tolerance: Tolerance, output: Any, phase: str) -> bool:
        met = tolerance.met(output)
        observed = tolerance.observed(output)
        self.result.judgements.append(
            Judgement(
                activity.name,
                phase,
                activity.promise or activity.name,
                tolerance.describe(),
                observed,
                met,
            )
        )
        self.ctx.events.emit(
            "probe", probe=activity.name, phase=phase, met=met, observed=observed,
            expected=tolerance.describe(),
        )  # fmt: skip
        return met

    async def activity(
        self, activity: Activity, phase: str, tolerance: Tolerance | None = None
    ) -> dict[str, Any]:
        """Run one activity; its journal entry (CTK shape, plus `tolerance_met`)."""
        if activity.pause_before:
            await asyncio.sleep(activity.pause_before)
        start, started = utc_now(), time.monotonic()
        entry: dict[str, Any] = {"activity": activity.to_json(self.scenario.name), "output": None}
        try:
            output = await activity.func(self.ctx)
        except Skip as exc:
            # CTK knows only `succeeded` and `failed`: the activity did its job, which was to
            # find that it cannot judge here; `skipped` says so and why.
            entry.update(status="succeeded", output={"skipped": str(exc)}, skipped=str(exc))
            if (tolerance or activity.tolerance) is not None:
                self.result.skipped.append(
                    {"name": activity.name, "phase": phase,
                     "promise": activity.promise or activity.name, "reason": str(exc)}
                )  # fmt: skip
            self.ctx.events.emit("skipped", activity=activity.name, phase=phase, reason=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            lines = traceback.format_exception(exc)
            entry.update(status="failed", exception=lines)
            self.errors.append(f"{activity.name}: {type(exc).__name__}: {exc}")
            self.ctx.events.emit("activity_error", activity=activity.name, error=repr(exc))
        else:
            entry.update(status="succeeded", output=_jsonable(output))
            tolerance = tolerance or activity.tolerance
            if tolerance is not None:
                entry["tolerance_met"] = self.judge(activity, tolerance, output, phase)
        entry.update(start=start, end=utc_now(), duration=round(time.monotonic() - started, 6))
        if activity.pause_after:
            await asyncio.sleep(activity.pause_after)
        return entry

    async def steady_state(self, phase: str) -> dict[str, Any]:
        probes = [await self.activity(p.probe, phase) for p in self.scenario.hypothesis.probes]
        return _steady_state_check(probes)

    async def during(self) -> list[dict[str, Any]]:
        """The continuous checks, as CTK records them: a list of steady-state checks."""
        entries = await self._during_probes()
        return [_steady_state_check(entries)] if entries else []

    async def _during_probes(self) -> list[dict[str, Any]]:
        entries = []
        for steady in self.scenario.hypothesis.probes:
            if steady.during is None or steady.during_tolerance is None:
                continue
            activity = Activity(
                "probe",
                f"{steady.probe.name}-during",
                steady.during,
                steady.during_promise,
                steady.during_tolerance,
            )
            entries.append(await self.activity(activity, "during"))
        return entries


async def run_scenario(
    scenario: Scenario, ctx: Context, *, backend: str | None, settle_timeout: float = 15.0
) -> ScenarioResult:
    """Run `scenario` in `ctx` and judge it. Never raises but for a second cancellation."""
    run = _Run(scenario, ctx, backend)
    journal = _journal_head(scenario, ctx.name, ctx.seed)
    journal.update(start=utc_now(), status="completed", deviated=False)
    started = time.monotonic()
    ctx.events.emit("scenario_start", seed=ctx.seed, run_seed=ctx.run_seed, backend=backend)
    # Other work on the machine shows in latency figures: record it next to them.
    ctx.figures.setdefault("load_average_1m", round(os.getloadavg()[0], 2))
    steady: dict[str, Any] = {"before": None, "after": None, "during": []}
    journal["run"], journal["rollbacks"] = [], []
    interrupted = False
    try:
        steady["before"] = await run.steady_state("before")
        if steady["before"]["steady_state_met"]:
            ctx.sampler.start()
            method_start = time.monotonic()
            ctx.state["method_start"] = method_start
            try:
                for activity in scenario.method:
                    entry = await run.activity(activity, "method")
                    journal["run"].append(entry)
                    if entry["status"] == "failed":
                        break
            finally:
                await ctx.sampler.stop()
                ctx.state["method_end"] = time.monotonic()
            steady["during"] = await run.during()
        else:
            journal["status"] = "failed"
    except asyncio.CancelledError:
        interrupted = True
        journal["status"] = "interrupted"
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    # Rollbacks always run: after a deviation, a crash and an interruption alike.
    for activity in scenario.rollbacks:
        journal["rollbacks"].append(await run.activity(activity, "rollback"))
    if not interrupted and steady["before"] and steady["before"]["steady_state_met"]:
        steady["after"] = await run.steady_state("after")
    journal["steady_states"] = steady
    result = run.result
    if not interrupted:
        result.tasks = await _settle_and_check(ctx, settle_timeout)
        journal["tasks"] = result.tasks.to_json()
    result.figures = dict(ctx.figures)
    if result.tasks is not None and result.tasks.checked:
        result.figures.setdefault("task_success_rate", result.tasks.success_rate)
    window = ctx.sampler.window(ctx.state.get("method_start", 0.0), ctx.state.get("method_end", 0))
    result.figures.setdefault("public_error_rate", window.error_rate)
    result.figures.setdefault("public_p99_ms", window.to_json()["p99_ms"])
    result.duration_s = round(time.monotonic() - started, 3)
    result.interrupted = interrupted
    _decide(result, run.errors, interrupted)
    if result.skipped and not result.reason:
        names = ", ".join(s["name"] for s in result.skipped)
        result.reason = f"not judged here: {names} ({result.skipped[0]['reason']})"
    journal.update(
        deviated=bool(result.failed_hypotheses),
        end=utc_now(),
        duration=result.duration_s,
        verdict=result.verdict,
        reason=result.reason,
        hypotheses=[j.to_json() for j in result.judgements],
        skipped_hypotheses=result.skipped,
        figures=result.figures,
    )
    if run.errors and journal["status"] == "completed":
        journal["status"] = "failed"
    result.journal = journal
    ctx.events.emit("scenario_end", verdict=result.verdict, reason=result.reason)
    return result


def _decide(result: ScenarioResult, errors: list[str], interrupted: bool) -> None:
    failed = result.failed_hypotheses
    if result.tasks is not None and result.tasks.data_lost:
        t = result.tasks
        result.verdict = "data_lost"
        result.reason = (
            f"tasks lost {len(t.lost)}, duplicated {len(t.duplicated)}, "
            f"unexpected {len(t.unexpected)} of {t.attempted} started"
        )
        if t.jobs is not None:
            j = t.jobs
            result.reason += (
                f"; jobs lost {len(j.lost)}, duplicated {len(j.duplicated)}, "
                f"unexpected {len(j.unexpected)} of {j.expected} expected"
            )
    elif interrupted:
        result.verdict, result.reason = "interrupted", "interrupted by a signal"
    elif errors:
        result.verdict, result.reason = "error", f"harness error in {errors[0]}"
    elif failed:
        names = ", ".join(f"{j.name} ({j.phase})" for j in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        result.verdict, result.reason = "deviated", f"{names}{more}"


async def _settle_and_check(ctx: Context, patience: float) -> TaskCheck:
    """Wait until every started task has a record and no job is due or running (or nothing
    changes for a while with no job in progress, or `patience` runs out); check."""
    backend = ctx.deployment.backend
    if backend is None:
        return TaskCheck(checked=False, reason="no database access (give --database-url)")
    deadline = time.monotonic() + patience
    quiet_since, last_seen = time.monotonic(), (-1, -1)
    while True:
        rows = await backend.read()
        spool = read_spool(ctx.deployment.spool_path)
        optional = ctx.optional_tasks | ctx.claimed
        check = check_tasks(
            rows, spool, expected=ctx.expected_tasks, optional=optional, since=ctx.started_at
        )
        jobs = check_jobs(
            rows,
            spool,
            games=ctx.expected_tasks,
            job_ids=ctx.expected_jobs,
            optional=optional,
            since=ctx.started_at,
        )
        check.jobs = jobs
        ended = jobs.done + jobs.failed_recorded + jobs.in_spool
        seen = (check.attempted - len(check.lost), ended)
        if seen != last_seen:
            quiet_since, last_seen = time.monotonic(), seen
        done = not check.lost and not jobs.lost and not jobs.busy
        # A job that is due or running is progress still to come (a lease may take its full
        # length to expire before another worker takes the job over): not quiet.
        quiet = not jobs.busy and time.monotonic() - quiet_since > 3.0
        if done or quiet or time.monotonic() > deadline:
            ctx.events.emit("tasks", **check.to_json())
            return check
        await asyncio.sleep(0.1)


def _steady_state_check(probes: list[dict[str, Any]]) -> dict[str, Any]:
    """CTK's record of one steady-state check: met unless a probe failed or was out of tolerance."""
    met = all(p.get("tolerance_met", True) and p["status"] != "failed" for p in probes)
    return {"steady_state_met": met, "probes": probes}


def _jsonable(value: Any) -> Any:
    """Outputs go into JSON files: keep plain data, stringify the rest."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return str(value)
