"""The async circuit breaker over real awaits: it opens, rejects, trials once, and recovers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import time_machine

from system.resilience.breaker import AsyncCircuitBreaker, CircuitOpenError, Transition
from tests.support.waiting import eventually

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Upstream:
    """An awaited dependency whose answers the test scripts."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("upstream down")
        return "ok"


async def call(breaker: AsyncCircuitBreaker, upstream: Upstream) -> str:
    async with breaker.guard():
        return await upstream()


def breaker(**kwargs: float) -> AsyncCircuitBreaker:
    return AsyncCircuitBreaker(
        "BGG API",
        fail_max=int(kwargs.get("fail_max", 5)),
        reset_timeout=kwargs.get("reset_timeout", 60),
    )


async def test_an_async_failure_is_counted_and_opens_after_exactly_fail_max() -> None:
    """The spec's bug: @breaker on an async def never counted a failure. This one does."""
    b, up = breaker(), Upstream()
    up.fail = True
    for n in range(1, 6):
        with pytest.raises(ConnectionError):
            await call(b, up)
        assert (await b.snapshot()).failures == n
    assert (await b.snapshot()).state == "open"
    assert b.pybreaker.current_state == "open"  # pybreaker's own view agrees
    for _ in range(10):
        with pytest.raises(CircuitOpenError) as rejected:
            await call(b, up)
        assert rejected.value.retry_after == 60
    assert up.calls == 5


async def test_a_success_resets_the_failure_count() -> None:
    b, up = breaker(), Upstream()
    up.fail = True
    for _ in range(4):
        with pytest.raises(ConnectionError):
            await call(b, up)
    up.fail = False
    await call(b, up)
    up.fail = True
    for _ in range(4):
        with pytest.raises(ConnectionError):
            await call(b, up)
    assert (await b.snapshot()).state == "closed"


async def test_after_the_reset_timeout_one_trial_decides() -> None:
    with time_machine.travel(START, tick=False) as clock:
        b, up = breaker(), Upstream()
        seen: list[Transition] = []
        b.on_transition(seen.append)
        up.fail = True
        for _ in range(5):
            with pytest.raises(ConnectionError):
                await call(b, up)
        clock.shift(59)
        with pytest.raises(CircuitOpenError) as rejected:
            await call(b, up)
        assert rejected.value.retry_after == 1
        clock.shift(1)
        with pytest.raises(ConnectionError):  # the trial fails: open again, for 60 s more
            await call(b, up)
        assert up.calls == 6
        with pytest.raises(CircuitOpenError):
            await call(b, up)
        clock.shift(60)
        up.fail = False
        assert await call(b, up) == "ok"
        assert (await b.snapshot()).state == "closed"
        assert [(t.from_state, t.to_state) for t in seen] == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]


async def test_half_open_admits_exactly_one_of_many_concurrent_callers() -> None:
    with time_machine.travel(START, tick=False) as clock:
        b, up = breaker(), Upstream()
        up.fail = True
        for _ in range(5):
            with pytest.raises(ConnectionError):
                await call(b, up)
        clock.shift(61)
        up.fail, up.calls, up.gate = False, 0, asyncio.Event()
        results = [asyncio.create_task(call(b, up)) for _ in range(50)]
        # Every caller has had its turn while the one admitted waits at the gate.
        await eventually(
            lambda: sum(r.done() for r in results),
            "49 callers turned away",
            until=lambda n: n == 49,
        )
        up.gate.set()
        outcomes = await asyncio.gather(*results, return_exceptions=True)
        assert up.calls == 1
        assert outcomes.count("ok") == 1
        assert all(isinstance(o, CircuitOpenError) for o in outcomes if o != "ok")
        assert (await b.snapshot()).state == "closed"


async def test_cancellation_is_never_a_failure_and_frees_the_trial() -> None:
    with time_machine.travel(START, tick=False) as clock:
        b, up = breaker(fail_max=2), Upstream()
        up.gate = asyncio.Event()
        for _ in range(5):
            task = asyncio.create_task(call(b, up))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert (await b.snapshot()).failures == 0
        up.gate = None
        up.fail = True
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await call(b, up)
        clock.shift(61)
        up.gate = asyncio.Event()
        trial = asyncio.create_task(call(b, up))
        await asyncio.sleep(0)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        snap = await b.snapshot()
        assert snap.state == "half-open" and snap.trial_token is None
        up.gate, up.fail = None, False
        assert await call(b, up) == "ok"  # the next caller gets the trial at once


async def test_a_late_answer_cannot_flip_the_state() -> None:
    with time_machine.travel(START, tick=False) as clock:
        b, slow, fast = breaker(fail_max=2), Upstream(), Upstream()
        slow.gate = asyncio.Event()
        late = asyncio.create_task(call(b, slow))  # admitted while closed, answers much later
        await asyncio.sleep(0)
        fast.fail = True
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await call(b, fast)
        clock.shift(61)
        fast.gate = asyncio.Event()
        trial = asyncio.create_task(call(b, fast))
        await asyncio.sleep(0)
        slow.gate.set()  # the late success arrives while the trial is in flight
        assert await late == "ok"
        assert (await b.snapshot()).state == "half-open", "a late success closed the breaker"
        fast.gate.set()
        with pytest.raises(ConnectionError):
            await trial
        assert (await b.snapshot()).state == "open"


async def test_excluded_errors_count_as_success() -> None:
    b = AsyncCircuitBreaker(
        "x", fail_max=1, reset_timeout=60, is_failure=lambda e: not isinstance(e, KeyError)
    )
    for _ in range(3):
        with pytest.raises(KeyError):
            async with b.guard():
                raise KeyError("not found")
    assert (await b.snapshot()).state == "closed"


async def test_closed_to_closed_is_not_a_transition() -> None:
    b, up = breaker(), Upstream()
    seen: list[Transition] = []
    b.on_transition(seen.append)
    await call(b, up)
    await b.reset("closed")
    await b.snapshot()
    assert seen == []
    await b.reset("open")
    assert [(t.from_state, t.to_state) for t in seen] == [("closed", "open")]
    assert seen[0].at.tzinfo is UTC
