"""The load shapes as plans: which users run when, and whether BGG is up.

A plan is a list of `Phase`s over the run time. `LoadShape` (in `shapes.py`) follows the plan
tick by tick; keeping the plans free of Locust makes them testable on their own.

- steady: one phase, `users` for the whole run (or until stopped when there is no run time);
- ramp: `steps` equal phases from `users/steps` up to `users` (to find the knee);
- outage: warm-up with BGG up, BGG down for the window, recovery with BGG up again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Bgg = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Phase:
    """`users` (spawned at `spawn_rate`) from `start` to `end` seconds; BGG `up` or `down`."""

    name: str
    start: float
    end: float
    users: int
    spawn_rate: float
    bgg: Bgg = "up"


def steady(users: int, spawn_rate: float, duration: float | None) -> list[Phase]:
    """One phase; without a duration it lasts until the run is stopped."""
    return [Phase("steady", 0.0, math.inf if duration is None else duration, users, spawn_rate)]


def ramp(users: int, spawn_rate: float, duration: float, steps: int) -> list[Phase]:
    """`steps` equal phases, the i-th (1-based) with `ceil(users * i / steps)` users."""
    length = duration / steps
    phases: list[Phase] = []
    for i in range(1, steps + 1):
        count = max(1, math.ceil(users * i / steps))
        phases.append(Phase(f"step {i}/{steps}", (i - 1) * length, i * length, count, spawn_rate))
    return phases


def outage(
    users: int, spawn_rate: float, duration: float, window: tuple[float, float]
) -> list[Phase]:
    """Warm-up (BGG up), outage (BGG down) and recovery (BGG up) at the window's fractions."""
    down, up = window[0] * duration, window[1] * duration
    return [
        Phase("warm-up", 0.0, down, users, spawn_rate, "up"),
        Phase("outage", down, up, users, spawn_rate, "down"),
        Phase("recovery", up, duration, users, spawn_rate, "up"),
    ]


def phase_at(phases: Sequence[Phase], elapsed: float) -> Phase | None:
    """The phase running `elapsed` seconds into the run; None once the plan is over."""
    for phase in phases:
        if phase.start <= elapsed < phase.end:
            return phase
    return None
