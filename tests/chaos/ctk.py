"""What Chaos Toolkit accepts in an experiment and a journal, written down for the tests.

The rules follow chaoslib's own checks (`ensure_hypothesis_tolerance_is_valid`,
`ensure_activity_is_valid`, `within_tolerance`) and the journals it writes
(`fixtures/chaostoolkit/`), so a test can tell whether CTK's tools would read what the
harness writes, and judge its tolerances as the harness does, without installing CTK.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from numbers import Number
from typing import Any

#: An experiment's (and a journal's) statuses, and an activity run's.
JOURNAL_STATUSES = {"completed", "failed", "aborted", "interrupted"}
ACTIVITY_STATUSES = {"succeeded", "failed"}

JOURNAL_KEYS = {"chaoslib-version", "platform", "node", "experiment", "start", "end",
                "duration", "status", "deviated", "steady_states", "run", "rollbacks"}  # fmt: skip
RUN_KEYS = {"activity", "output", "status", "start", "end", "duration"}


def tolerance_problems(tolerance: Any) -> list[str]:
    """Why CTK would refuse this tolerance (empty: it accepts it)."""
    if not isinstance(tolerance, bool | int | list | str | dict):
        return [f"a tolerance must be a bool, int, list, string or object: {tolerance!r}"]
    if not isinstance(tolerance, dict):
        return []
    kind = tolerance.get("type")
    if kind == "range":
        bounds = tolerance.get("range")
        if not isinstance(bounds, list) or len(bounds) != 2:
            return [f"a range must be two numbers: {bounds!r}"]
        return [f"range bound not a number: {b!r}" for b in bounds if not _number(b)]
    if kind == "jsonpath":
        path = tolerance.get("path")
        return [] if isinstance(path, str) and path.strip() else ["a jsonpath needs a path"]
    if kind == "regex":
        return [] if "pattern" in tolerance else ["a regex needs a pattern"]
    if kind == "probe":
        return activity_problems(tolerance)
    return [f"unsupported tolerance type {kind!r}"]


def _number(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def activity_problems(activity: Any) -> list[str]:
    """Why CTK would refuse this declared activity."""
    if not isinstance(activity, dict):
        return [f"not an activity: {activity!r}"]
    problems = []
    if activity.get("type") not in ("probe", "action"):
        problems.append(f"activity type {activity.get('type')!r}")
    if not activity.get("name"):
        problems.append("an activity needs a name")
    provider = activity.get("provider")
    if not isinstance(provider, dict) or provider.get("type") not in ("python", "process", "http"):
        problems.append(f"{activity.get('name')}: provider {provider!r}")
    pauses = activity.get("pauses") or {}
    problems += [f"pause {k} not a number" for k, v in pauses.items() if not _number(v)]
    return problems


def experiment_problems(experiment: Any) -> list[str]:
    """Why CTK would refuse this experiment."""
    if not isinstance(experiment, dict):
        return ["no experiment"]
    problems = [] if experiment.get("title") else ["an experiment needs a title"]
    hypothesis = experiment.get("steady-state-hypothesis")
    if hypothesis is not None:
        if not hypothesis.get("title"):
            problems.append("the hypothesis needs a title")
        for probe in hypothesis.get("probes") or []:
            problems += activity_problems(probe)
            if "tolerance" not in probe:
                problems.append(f"{probe.get('name')}: a hypothesis probe needs a tolerance")
            else:
                problems += tolerance_problems(probe["tolerance"])
    method = experiment.get("method")
    if not isinstance(method, list) or not method:
        problems.append("an experiment needs a method")
    for activity in [*(method or []), *(experiment.get("rollbacks") or [])]:
        problems += activity_problems(activity)
        if "tolerance" in activity:
            problems += tolerance_problems(activity["tolerance"])
    return problems


def journal_problems(journal: dict[str, Any]) -> list[str]:
    """Why CTK's reporting would not read this journal as one experiment's."""
    problems = [f"missing {key}" for key in sorted(JOURNAL_KEYS - set(journal))]
    problems += experiment_problems(journal.get("experiment"))
    if journal.get("status") not in JOURNAL_STATUSES:
        problems.append(f"status {journal.get('status')!r}")
    if not isinstance(journal.get("deviated"), bool):
        problems.append("deviated must be a bool")
    if not _number(journal.get("duration")):
        problems.append("duration must be a number")
    steady = journal.get("steady_states") or {}
    if set(steady) != {"before", "after", "during"}:
        problems.append(f"steady_states keys {sorted(steady)}")
    checks = [steady.get("before"), steady.get("after"), *(steady.get("during") or [])]
    entries = [p for c in checks if c is not None for p in c.get("probes", [])]
    for check in checks:
        if check is not None and set(check) < {"steady_state_met", "probes"}:
            problems.append(f"a steady-state check lacks steady_state_met/probes: {check}")
    entries += list(journal.get("run") or []) + list(journal.get("rollbacks") or [])
    for entry in entries:
        missing = RUN_KEYS - set(entry)
        if missing:
            problems.append(f"an activity run lacks {sorted(missing)}")
        if entry.get("status") not in ACTIVITY_STATUSES:
            problems.append(f"activity status {entry.get('status')!r}")
        problems += activity_problems(entry.get("activity"))
    return problems


def within_tolerance(tolerance: Any, value: Any) -> bool:
    """CTK's verdict on `value` (chaoslib's `within_tolerance`, for the forms we write;
    a jsonpath only as `$` or `$.key[.key...]`)."""
    if isinstance(tolerance, bool | str):
        return bool(value == tolerance)
    if isinstance(tolerance, int):
        if isinstance(value, dict) and "status" in value:
            return bool(value["status"] == tolerance)
        return bool(value == tolerance)
    assert isinstance(tolerance, dict), tolerance
    target = tolerance.get("target")
    if target and isinstance(value, dict):
        value = value.get(target, value)
    if tolerance["type"] == "range":
        try:
            number = Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            return False
        low, high = tolerance["range"]
        return Decimal(low) <= number <= Decimal(high)
    if tolerance["type"] == "jsonpath":
        found: list[Any] = [value]
        for key in tolerance["path"].removeprefix("$").split(".")[1:]:
            found = [f[key] for f in found if isinstance(f, dict) and key in f]
        if "expect" in tolerance:
            return found == [tolerance["expect"]]
        return bool(found)
    raise AssertionError(f"not a form the harness writes: {tolerance}")
