"""`Periodic`: the loop behind alerts, recovery probes and spool replays."""

from __future__ import annotations

import asyncio

import pytest

from system.periodic import Periodic
from tests.support.waiting import eventually


async def test_a_failing_step_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first check broke")

    loop = Periodic("test check", 0.001, step)
    loop.start()
    try:
        await eventually(lambda: calls, "a second step after the failing one", until=(2).__le__)
    finally:
        await loop.aclose()
    assert "test check failed" in caplog.text and "first check broke" in caplog.text
    stopped_at = calls
    await asyncio.sleep(0.02)  # twenty intervals in which a loop still running would step
    assert calls == stopped_at, "no step after aclose"


async def test_aclose_before_start_is_a_no_op() -> None:
    async def step() -> None:
        raise AssertionError("never runs")

    await Periodic("never started", 0.001, step).aclose()
