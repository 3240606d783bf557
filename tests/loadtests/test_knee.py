"""Finding the knee of a ramp."""

from __future__ import annotations

from loadtests.knee import Step, find_knee


def test_the_knee_is_the_last_step_that_kept_up() -> None:
    steps = [Step(10, 100, 20), Step(20, 198, 22), Step(30, 290, 30), Step(40, 300, 150)]
    knee = find_knee(steps)
    assert knee is not None
    assert (knee.index, knee.users, knee.rps) == (2, 30, 290)
    assert "40 users gave 300 req/s" in knee.reason


def test_latency_bound_marks_the_knee_too() -> None:
    steps = [Step(10, 100, 20), Step(20, 200, 600)]
    knee = find_knee(steps, latency_bound_ms=500)
    assert knee is not None
    assert knee.users == 10
    assert "p95 reached 600 ms" in knee.reason


def test_no_knee_when_every_step_kept_up() -> None:
    assert find_knee([Step(10, 100, 20), Step(20, 200, 21), Step(30, 300, 22)]) is None
    assert find_knee([]) is None


def test_saturated_from_the_first_step() -> None:
    knee = find_knee([Step(50, 100, 900), Step(100, 110, 2000)], latency_bound_ms=500)
    assert knee is not None
    assert (knee.index, knee.users) == (-1, 0)
    assert "start lower" in knee.reason
