"""`LoadShape`: the one Locust load shape of the locustfile, following the `--shape` plan.

It reads Locust's own `--users`, `--spawn-rate` and `--run-time` (`use_common_options`), so
`locust -f loadtests/locustfile.py -u 50 -r 5 -t 2m` and the web UI's start form behave as
usual (steady shape); `--shape ramp` and `--shape outage` follow `plans.py`. Ramp and outage
need a run time (60 s without `--run-time`).

Locust calls `tick()` about once a second, so a phase starts on the first tick after its
planned time. On every phase change the shape snapshots the statistics (for per-phase
figures), records the BGG breaker's state as the service reports it, and for the outage shape
switches the fake BGG off (`--outage-fault error`: 503 at once; `hang`: no answer) and on again
through its `/_control/` API. A control call that fails is a harness error: the run cannot
prove what it is for, so it ends with exit code 2.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx
from locust import LoadTestShape

from chaos.fakes.control import FakeControl, FakeControlError
from loadtests import names, plans
from loadtests.preflight import NO_ANSWER
from loadtests.settings import (
    ADMIN_TOKEN_ENV,
    DEFAULT_SHAPE_SECONDS,
    option_value,
    parse_range,
)
from loadtests.summary import PhaseRecord
from loadtests.windows import take

logger = logging.getLogger(__name__)
OUTAGE_RULE_NAME = "loadtest-outage"


class BggSwitch:
    """Turns the fake BGG's `thing` endpoint off (a fault rule) and on (no rules)."""

    def __init__(self, control_url: str, fault: str) -> None:
        self.control_url = control_url
        self.fault = fault
        self.down = False

    def rule(self) -> dict[str, Any]:
        """The fault rule of an outage."""
        if self.fault == "hang":
            return {"name": OUTAGE_RULE_NAME, "path": "/thing", "hang": True}
        return {"name": OUTAGE_RULE_NAME, "path": "/thing", "status": 503}

    def set(self, *, down: bool) -> None:
        """Install the outage rule or remove every rule; raise `RuntimeError` on failure."""
        try:
            with FakeControl(self.control_url) as control:
                if down:
                    control.set_faults([self.rule()])
                else:
                    control.clear()
        except FakeControlError as exc:
            raise RuntimeError(f"the fake BGG's control API answered {exc}") from None
        except httpx.HTTPError as exc:
            raise RuntimeError(f"the fake BGG's control API is unreachable: {exc}") from None
        self.down = down
        logger.info("fake BGG switched %s", f"DOWN ({self.fault})" if down else "UP")


def make_plan(parsed: Any) -> list[plans.Phase]:
    """The plan the options ask for."""
    shape = option_value(parsed, "shape")
    users = int(getattr(parsed, "num_users", None) or 1)
    rate = float(getattr(parsed, "spawn_rate", None) or 1)
    run_time = getattr(parsed, "run_time", None)
    duration = float(run_time) if run_time else None
    if shape == "ramp":
        steps = int(option_value(parsed, "ramp_steps"))
        return plans.ramp(users, rate, duration or DEFAULT_SHAPE_SECONDS, steps)
    if shape == "outage":
        window = parse_range(option_value(parsed, "outage_window"))
        return plans.outage(users, rate, duration or DEFAULT_SHAPE_SECONDS, window)
    return plans.steady(users, rate, duration)


class LoadShape(LoadTestShape):
    """Follows the plan of `--shape`; see the module docstring."""

    use_common_options = True

    def __init__(self) -> None:
        # The base __init__ only starts the clock (untyped upstream): done here instead.
        self.start_time = time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        self.plan: list[plans.Phase] | None = None
        self.records: list[PhaseRecord] = []
        self.errors: list[str] = []
        self.switch: BggSwitch | None = None
        self.done = False

    def reset_time(self) -> None:
        """A new test starts: BGG back on if a stopped test left it off, clock and plan anew."""
        self.restore()
        self.start_time = time.perf_counter()
        self._reset()

    def elapsed(self) -> float:
        """Seconds since the test started (Locust's `get_run_time`, typed)."""
        return time.perf_counter() - self.start_time

    @property
    def _environment(self) -> Any:
        assert self.runner is not None
        return self.runner.environment

    def tick(self) -> tuple[int, float] | None:
        """(users, spawn rate) of the current phase; None when the plan is over."""
        elapsed = self.elapsed()
        if self.plan is None:
            self.plan = make_plan(self._environment.parsed_options)
            self._prepare_switch()
        phase = plans.phase_at(self.plan, elapsed)
        if phase is None:
            if not self.done:
                self._end_phase()
                self.restore()
                self.done = True
            return None
        if not self.records or self.records[-1].phase is not phase:
            self._end_phase()
            self._start_phase(phase, elapsed)
        return phase.users, phase.spawn_rate

    def _prepare_switch(self) -> None:
        parsed = self._environment.parsed_options
        if not any(phase.bgg == "down" for phase in self.plan or ()):
            return
        control = option_value(parsed, "bgg_control_url")
        if not control:
            self._error("the outage shape needs --bgg-control-url (the fake BGG to switch off)")
            return
        self.switch = BggSwitch(control, option_value(parsed, "outage_fault"))

    def _start_phase(self, phase: plans.Phase, elapsed: float) -> None:
        logger.info("phase %s: %d users, BGG %s", phase.name, phase.users, phase.bgg)
        self.records.append(PhaseRecord(phase, take(self._environment.stats, elapsed)))
        if self.switch is not None and self.switch.down != (phase.bgg == "down"):
            try:
                self.switch.set(down=phase.bgg == "down")
            except RuntimeError as exc:
                self._error(str(exc))

    def _end_phase(self) -> None:
        if self.records:
            self.records[-1].breaker_at_end = self.breaker_state()

    def breaker_state(self) -> str | None:
        """The BGG breaker's state as the service reports it (None if it cannot be read)."""
        token = os.environ.get(ADMIN_TOKEN_ENV)
        host = self._environment.host
        if not token or not host:
            return None
        try:
            # httpx's blocking client: in Locust's gevent-patched process its socket yields.
            with httpx.Client(trust_env=False, timeout=5.0) as http:
                answer = http.get(
                    f"{host.rstrip('/')}{names.BREAKER_STATUS}",
                    headers={"Authorization": f"Bearer {token}"},
                )
            state = answer.json().get("state") if answer.status_code == 200 else None
        except (*NO_ANSWER, ValueError, AttributeError):
            return None
        return str(state) if state is not None else None

    def restore(self) -> None:
        """Switch BGG back on if this shape switched it off (end of run, interruption)."""
        if self.switch is not None and self.switch.down:
            try:
                self.switch.set(down=False)
            except RuntimeError as exc:
                self._error(f"could not switch BGG back on: {exc}")

    def _error(self, message: str) -> None:
        logger.error("load shape: %s", message)
        if message not in self.errors:
            self.errors.append(message)
