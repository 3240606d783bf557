"""The async circuit breaker over real awaits: it opens, rejects, trials once, and recovers."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import time_machine

from system.resilience.breaker import AsyncCircuitBreaker, CircuitOpenError, Transition
from system.resilience.store import MemoryBreakerStore, Snapshot
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
    assert str(rejected.value) == "circuit breaker 'BGG API' is open"
    # what the API's 503 body names: the breaker and its state in the API's spelling
    assert (rejected.value.breaker, rejected.value.state) == ("BGG API", "open")
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
        rejections = [o for o in outcomes if o != "ok"]
        assert all(isinstance(o, CircuitOpenError) for o in rejections)
        # the trial's answer is due soon: come back in a second
        assert {o.retry_after for o in rejections if isinstance(o, CircuitOpenError)} == {1}
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
    b.pybreaker.close()  # pybreaker's own closed -> closed report is dropped too
    assert seen == []
    await b.reset("open")
    assert [(t.from_state, t.to_state) for t in seen] == [("closed", "open")]
    assert seen[0].at.tzinfo is UTC
    assert seen[0].local is True  # an operator's reset is this process's change


async def test_opening_is_logged_as_a_warning_and_every_other_change_as_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = breaker()
    with caplog.at_level(logging.INFO, logger="system.resilience.breaker"):
        await b.reset("open")
        await b.reset("half-open")
        await b.reset("closed")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "circuit breaker 'BGG API': closed -> open"),
        (logging.INFO, "circuit breaker 'BGG API': open -> half_open"),
        (logging.INFO, "circuit breaker 'BGG API': half_open -> closed"),
    ]


async def test_a_failing_transition_callback_is_logged_and_the_next_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = breaker()
    seen: list[Transition] = []

    def broken(_transition: Transition) -> None:
        raise RuntimeError("metrics down")

    b.on_transition(broken)
    b.on_transition(seen.append)
    with caplog.at_level(logging.ERROR, logger="system.resilience.breaker"):
        await b.reset("open")
    assert [(t.from_state, t.to_state) for t in seen] == [("closed", "open")]
    (logged,) = caplog.records
    assert logged.getMessage() == "breaker transition callback failed"
    assert logged.exc_info is not None and logged.exc_info[0] is RuntimeError


async def test_wait_open_returns_while_open_and_waits_again_once_closed() -> None:
    b = breaker()
    await b.reset("open")
    already = asyncio.create_task(b.wait_open())
    await eventually(already.done, "wait_open to return on an open breaker")
    await b.reset("half-open")
    waiting = asyncio.create_task(b.wait_open())
    await asyncio.sleep(0)
    assert not waiting.done(), "wait_open returned while the breaker was half-open"
    await b.reset("open")
    await eventually(waiting.done, "wait_open to return once the breaker opened again")


async def test_the_history_keeps_the_last_transitions() -> None:
    b = AsyncCircuitBreaker("x", fail_max=1, reset_timeout=60, history=2)
    for state in ("open", "closed", "open"):
        await b.reset(state)
    assert [(t.from_state, t.to_state) for t in b.transitions] == [
        ("open", "closed"),
        ("closed", "open"),
    ]
    default = breaker()
    for _ in range(26):
        await default.reset("open")
        await default.reset("closed")
    assert len(default.transitions) == 50


def test_a_trial_may_hold_its_slot_for_the_reset_timeout_but_30_seconds_at_least() -> None:
    assert breaker(reset_timeout=5).trial_ttl == 30
    assert breaker(reset_timeout=90).trial_ttl == 90
    named = AsyncCircuitBreaker("x", fail_max=1, reset_timeout=90, trial_ttl=7)
    assert named.trial_ttl == 7


async def test_only_an_open_breaker_counts_down_to_half_open() -> None:
    with time_machine.travel(START, tick=False) as clock:
        b = breaker(reset_timeout=60)
        opened = await b.reset("open")
        clock.shift(45)
        assert b.seconds_until_half_open(opened) == 15
        clock.shift(30)
        assert b.seconds_until_half_open(opened) == 0
        assert b.seconds_until_half_open(await b.reset("closed")) is None
        # half-open after an open spell still carries when it opened: no countdown either
        half = replace(opened, state="half-open")
        assert b.seconds_until_half_open(half) is None


async def test_a_change_another_worker_made_is_seen_as_not_local() -> None:
    shared = MemoryBreakerStore()
    here = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=shared)
    there = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=shared)
    seen: list[Transition] = []
    here.on_transition(seen.append)
    await there.reset("open")
    await here.snapshot()
    assert [(t.to_state, t.local) for t in seen] == [("open", False)]


class CountingStore(MemoryBreakerStore):
    """A memory store that counts its reads (the fast rejection's whole cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self) -> Snapshot:
        self.loads += 1
        return await super().load()


async def test_the_fast_rejection_costs_nothing_while_this_process_saw_the_breaker_closed() -> None:
    store = CountingStore()
    b = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=store)
    await b.reject_while_open()
    assert store.loads == 0
    # Opened by another worker: still nothing here until this process reads the store ...
    await store.reset("open", time.time())
    await b.reject_while_open()
    assert store.loads == 0
    # ... and `guard`, which reads it, rejects.
    with pytest.raises(CircuitOpenError):
        async with b.guard():
            pass


async def test_the_fast_rejection_is_guards_rejection_until_the_reset_timeout() -> None:
    with time_machine.travel(START, tick=False) as clock:
        store = CountingStore()
        b = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=store)
        rejected: list[CircuitOpenError] = []
        b.on_rejection(rejected.append)
        await b.reset("open")
        clock.shift(45.5)
        with pytest.raises(CircuitOpenError) as fast:
            await b.reject_while_open()
        assert (fast.value.breaker, fast.value.state, fast.value.retry_after) == (
            "BGG API", "open", 15,
        )  # fmt: skip
        assert rejected == [fast.value]  # the callback gets the very error raised
        assert store.loads == 1
        # At the reset timeout to the microsecond a trial is due: left to `guard`.
        clock.shift(14.5)
        await b.reject_while_open()
        assert len(rejected) == 1
        async with b.guard():
            assert (await store.load()).state == "half-open"


async def test_the_fast_rejection_leaves_a_breaker_another_worker_moved_on_to_guard() -> None:
    with time_machine.travel(START, tick=False) as clock:
        store = MemoryBreakerStore()
        b = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=store)
        seen: list[Transition] = []
        b.on_transition(seen.append)
        await b.reset("open")
        clock.shift(55)
        # A worker whose clock runs 10 s ahead began the trial (for it the 60 s were up)
        # and was cancelled: half-open, its slot free, opened 55 s ago by this clock.
        ahead = START.timestamp() + 65
        claimed, _ = await store.try_begin_trial("theirs", 60, ahead, 30)
        assert claimed
        await store.release_trial("theirs")
        await b.reject_while_open()  # not open: `guard` decides, and it admits the trial
        assert b.last_known_state == "half-open"
        assert [(t.to_state, t.local) for t in seen] == [("open", True), ("half_open", False)]
        async with b.guard():
            pass
        assert (await store.load()).state == "closed"


async def test_a_change_this_process_makes_is_local_and_one_it_reads_is_not() -> None:
    with time_machine.travel(START, tick=False) as clock:
        shared = MemoryBreakerStore()
        here = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=shared)
        there = AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60, store=shared)
        seen: list[Transition] = []
        here.on_transition(seen.append)
        up = Upstream()
        up.fail = True
        with pytest.raises(ConnectionError):
            await call(here, up)  # a failure recorded here opens it
        clock.shift(60)
        up.fail = False
        await call(here, up)  # the trial (claimed here) closes it
        await there.reset("open")
        await here.snapshot()  # read here: another worker's change
        await here.reset("closed")  # an operator's reset through this process
        assert [(t.from_state, t.to_state, t.local) for t in seen] == [
            ("closed", "open", True),
            ("open", "half_open", True),
            ("half_open", "closed", True),
            ("closed", "open", False),
            ("open", "closed", True),
        ]
        assert all(type(t.local) is bool for t in seen)


def test_a_breaker_reports_the_settings_it_was_given() -> None:
    b = AsyncCircuitBreaker("Image CDN", fail_max=3, reset_timeout=7.5)
    assert (b.name, b.fail_max, b.reset_timeout) == ("Image CDN", 3, 7.5)
