"""The load shapes' plans."""

from __future__ import annotations

import math

from loadtests import plans


def test_steady_lasts_the_run_or_forever() -> None:
    (phase,) = plans.steady(10, 2.0, 30.0)
    assert (phase.users, phase.spawn_rate, phase.end, phase.bgg) == (10, 2.0, 30.0, "up")
    assert plans.steady(10, 2.0, None)[0].end == math.inf
    assert plans.phase_at(plans.steady(1, 1, 30.0), 30.0) is None


def test_ramp_steps_up_to_the_users() -> None:
    phases = plans.ramp(100, 10.0, 60.0, 4)
    assert [p.users for p in phases] == [25, 50, 75, 100]
    assert [(p.start, p.end) for p in phases] == [(0, 15), (15, 30), (30, 45), (45, 60)]
    assert [p.users for p in plans.ramp(3, 1.0, 10.0, 6)] == [1, 1, 2, 2, 3, 3]


def test_outage_is_warm_up_down_recovery() -> None:
    phases = plans.outage(30, 10.0, 60.0, (0.3, 0.7))
    assert [(p.name, p.bgg) for p in phases] == [
        ("warm-up", "up"),
        ("outage", "down"),
        ("recovery", "up"),
    ]
    assert [(p.start, p.end) for p in phases] == [(0, 18), (18, 42), (42, 60)]
    assert plans.phase_at(phases, 17.9) is phases[0]
    assert plans.phase_at(phases, 18.0) is phases[1]
    assert plans.phase_at(phases, 59.9) is phases[2]
    assert plans.phase_at(phases, 60.0) is None
