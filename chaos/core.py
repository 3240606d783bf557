"""The declarative core of a scenario, in Chaos Toolkit's terms.

A `Scenario` is data: a steady-state `Hypothesis` (probes with tolerances, checked before the
fault, continuously during it when a probe says so, and after recovery), a `method` (fault
actions and measuring probes, each with pauses) and `rollbacks` (always run). The functions
the activities name do the I/O; `chaos.engine` runs them and writes the journal.

A probe in the method may carry a tolerance too. Chaos Toolkit only records method probes;
we also judge them, because most of this project's promises are about what happens *during*
a fault ("the breaker opens after exactly 5 failed requests"), not about a steady state.
Every tolerance states a promise of the spec or a value the harness itself configured, never
a value read back from the service.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from chaos.context import Context

ActivityFunc = Callable[["Context"], Awaitable[Any]]
Phase = Literal["before", "during", "after"]
Requirement = Literal[
    "own_service", "redis", "two_workers", "restart", "database", "postgresql", "sentry"
]


def _lookup(output: Any, path: str | None) -> Any:
    """`output["a"]["b"]` for `path="a.b"`; the output itself when `path` is None."""
    if path is None:
        return output
    value = output
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


@dataclass(frozen=True, slots=True)
class Tolerance:
    """A check on a probe's output (or on one key of it, `path="p99_ms"`)."""

    kind: Literal["equals", "at_most", "at_least", "true"]
    value: Any = None
    path: str | None = None
    unit: str = ""

    def observed(self, output: Any) -> Any:
        """The part of the output this tolerance looks at."""
        return _lookup(output, self.path)

    def met(self, output: Any) -> bool:
        """Whether the output is within tolerance. A missing value never is."""
        seen = self.observed(output)
        if self.kind == "true":
            return seen is True
        if self.kind == "equals":
            return bool(seen == self.value)
        if not _is_number(seen) or math.isnan(seen):
            return False
        if self.kind == "at_most":
            return bool(seen <= self.value)
        return bool(seen >= self.value)

    def describe(self) -> str:
        """`p99_ms <= 50 ms`, `== 5`, ..."""
        subject = f"{self.path} " if self.path else ""
        unit = f" {self.unit}" if self.unit else ""
        if self.kind == "true":
            return f"{subject}is true".strip()
        sign = {"equals": "==", "at_most": "<=", "at_least": ">="}[self.kind]
        return f"{subject}{sign} {self.value}{unit}"

    def to_json(self) -> Any:
        """The tolerance in a form Chaos Toolkit accepts and judges the same way.

        CTK's tolerances: a bool, an int or a string (equal to the output), a list, or an
        object of `type` `range` (`range: [low, high]`, both numbers, on the output or on its
        key `target`), `regex`, `jsonpath` or `probe`. So: `equals` on the whole output is the
        scalar itself (a float becomes the range `[v, v]`); a number compared on a key is a
        `range` with `target` (an open end is the largest float, as JSON has no infinity).
        Anything else (a bool or a string on a key) is a `probe` tolerance: CTK calls
        `chaos.ctk.tolerance_met` with the output as `value`, which judges it with this very
        class. (A `jsonpath` would say it in CTK's own words, but chaoslib validates one only
        with the optional `jsonpath2` installed, and would take `1` for `true`.) Each object
        also carries a `description` (`p99_ms <= 50 ms`), which CTK ignores.
        """
        value = self.value
        whole = self.path is None
        if self.kind == "true":
            value = True
        if self.kind in ("true", "equals") and whole:
            if isinstance(value, bool | int | str):
                return value
            if _is_number(value):
                return {"type": "range", "range": [value, value],
                        "description": self.describe()}  # fmt: skip
        data: dict[str, Any]
        if self.kind == "at_most":
            data = {"type": "range", "range": [-sys.float_info.max, value]}
        elif self.kind == "at_least":
            data = {"type": "range", "range": [value, sys.float_info.max]}
        elif _is_number(value):
            data = {"type": "range", "range": [value, value]}
        else:
            return self._probe()
        if not whole:
            data["target"] = self.path
        return data | {"description": self.describe()}

    def _probe(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"kind": self.kind, "expected": self.value}
        if self.path is not None:
            arguments["path"] = self.path
        return {
            "type": "probe",
            "name": f"tolerance: {self.describe()}",
            "provider": {
                "type": "python",
                "module": "chaos.ctk",
                "func": "tolerance_met",
                "arguments": arguments,
            },
            "description": self.describe(),
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equals(value: Any, path: str | None = None, unit: str = "") -> Tolerance:
    """The output (or `path` in it) equals `value`."""
    return Tolerance("equals", value, path, unit)


def at_most(value: float, path: str | None = None, unit: str = "") -> Tolerance:
    """The output (or `path`, one key) is a number no larger than `value`."""
    return Tolerance("at_most", value, _one_key(path), unit)


def at_least(value: float, path: str | None = None, unit: str = "") -> Tolerance:
    """The output (or `path`, one key) is a number no smaller than `value`."""
    return Tolerance("at_least", value, _one_key(path), unit)


def _one_key(path: str | None) -> str | None:
    # CTK's range tolerance looks up one key (`target`), so a bound on a nested value could
    # not be written down in its vocabulary.
    if path is not None and "." in path:
        raise ValueError(f"a range tolerance reads one key of the output, not {path!r}")
    return path


def is_true(path: str | None = None) -> Tolerance:
    """The output (or `path`) is exactly `True`."""
    return Tolerance("true", True, path)


@dataclass(frozen=True, slots=True)
class Activity:
    """An action (does something) or a probe (measures something) with pauses around it.

    `tolerance` on a probe makes it a hypothesis: when it is not met the scenario deviates,
    and the probe's `promise` names it in the verdict. `pause_before`/`pause_after` are in
    seconds (Chaos Toolkit's `pauses`).
    """

    type: Literal["action", "probe"]
    name: str
    func: ActivityFunc
    promise: str = ""
    tolerance: Tolerance | None = None
    pause_before: float = 0.0
    pause_after: float = 0.0

    @property
    def coroutine(self) -> str:
        """The dotted name of the function the harness runs (`chaos.scenarios.x.f`)."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def to_json(self, scenario: str) -> dict[str, Any]:
        """The activity as Chaos Toolkit declares it, as one of `scenario`'s.

        Its provider is `chaos.ctk.harness_activity` with JSON arguments naming the scenario,
        the activity and the coroutine the harness runs: what chaoslib accepts (it cannot
        supply the harness's context nor await a coroutine) and what is true. Chaos Toolkit
        cannot run it; see `chaos.ctk`.
        """
        data: dict[str, Any] = {"type": self.type, "name": self.name}
        if self.tolerance is not None:
            data["tolerance"] = self.tolerance.to_json()
        if self.promise:
            data["promise"] = self.promise
        data["provider"] = {
            "type": "python",
            "module": "chaos.ctk",
            "func": "harness_activity",
            "arguments": {"scenario": scenario, "activity": self.name, "coroutine": self.coroutine},
        }
        if self.pause_before or self.pause_after:
            data["pauses"] = {
                key: value
                for key, value in (("before", self.pause_before), ("after", self.pause_after))
                if value
            }
        return data


def action(name: str, func: ActivityFunc, *, before: float = 0.0, after: float = 0.0) -> Activity:
    """An action activity."""
    return Activity("action", name, func, pause_before=before, pause_after=after)


def probe(
    name: str,
    func: ActivityFunc,
    tolerance: Tolerance | None = None,
    *,
    promise: str = "",
    before: float = 0.0,
    after: float = 0.0,
) -> Activity:
    """A probe activity; with a tolerance it is a hypothesis of the method."""
    return Activity("probe", name, func, promise, tolerance, before, after)


@dataclass(frozen=True, slots=True)
class SteadyProbe:
    """A probe of the steady-state hypothesis.

    Checked before the method and after the rollbacks. With `during=True` it is also
    sampled continuously while the method runs (every `interval` seconds); its tolerance
    then applies to the aggregate of those samples (`func_during` builds it).
    """

    probe: Activity
    during: ActivityFunc | None = None
    during_tolerance: Tolerance | None = None
    during_promise: str = ""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """The steady-state hypothesis: what must hold before, during and after."""

    title: str
    probes: tuple[SteadyProbe, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One experiment: a fault, the promises it tests, and how to undo it."""

    name: str
    title: str
    fault: str
    description: str
    hypothesis: Hypothesis
    method: tuple[Activity, ...]
    rollbacks: tuple[Activity, ...]
    tags: tuple[str, ...] = ()
    #: Which service the scenario runs against (see `chaos.stack.SERVICE_PROFILES`).
    service: str = "main"
    #: What it needs beyond the shared service; a `--target` run skips what it cannot do.
    requires: frozenset[Requirement] = field(default_factory=frozenset)
    #: Whether it runs once per database backend (SQLite, and PostgreSQL when configured).
    per_backend: bool = False
    #: Settings of its own service, on top of the harness's (`chaos.promises.Harness`) and
    #: under `--service-env`: e.g. short job leases so a crash is recovered in seconds.
    service_env: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The experiment as Chaos Toolkit declares it."""
        return {
            "version": "1.0.0",
            "title": self.title,
            # chaoslib refuses an experiment without a description: the fault at least.
            "description": self.description or f"{self.title}: {self.fault}",
            "tags": list(self.tags),
            "steady-state-hypothesis": {
                "title": self.hypothesis.title,
                "probes": [p.probe.to_json(self.name) for p in self.hypothesis.probes],
            },
            "method": [a.to_json(self.name) for a in self.method],
            "rollbacks": [a.to_json(self.name) for a in self.rollbacks],
            "dry": None,
        }
