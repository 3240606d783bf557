"""A circuit breaker that works under asyncio, built on pybreaker.

pybreaker's `CircuitBreaker` holds the breaker's name, thresholds and state, and notifies its
listeners of state changes; the status endpoint, logs and metrics read it. The decisions are
made here, in `guard()`, because pybreaker's own call path cannot be trusted with coroutines:

- its decorator on an `async def` never awaits the coroutine, so it records a success the
  moment the coroutine object is made and never opens (pybreaker issue 7);
- it counts `asyncio.CancelledError` as a failure, and an excluded exception as a success;
- in half-open it lets every concurrent caller through, and a late answer from a request
  admitted long before can flip the state.

So `guard()` admits a request (or rejects it fast with `CircuitOpenError`), and when the
guarded block ends it records the outcome through an atomic `BreakerStore` step: a failure
counts only for the generation it was admitted in, only the holder of the half-open trial
token decides the trial, and cancellation counts as nothing. The store is in memory, or in
Redis so that every worker shares one state (`system/resilience/redis_store.py`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pybreaker

from system.resilience.store import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerStore,
    MemoryBreakerStore,
    Snapshot,
)

logger = logging.getLogger(__name__)

#: The states as the API spells them.
API_STATE = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}


class CircuitOpenError(pybreaker.CircuitBreakerError):
    """The breaker rejected the call without running it."""

    def __init__(self, breaker: str, state: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {breaker!r} is {API_STATE[state]}")
        self.breaker = breaker
        self.state = API_STATE[state]
        #: Seconds until a trial request may go through.
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Transition:
    """A real change of state (pybreaker also reports closed -> closed; those are dropped)."""

    breaker: str
    from_state: str
    to_state: str
    at: datetime
    #: True when this process made the change; False when it noticed another worker's
    #: (through the shared store). Follow-up work (automatic retries) runs only where local.
    local: bool = True


TransitionCallback = Callable[[Transition], None]


class _MirrorStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's view of the store's last snapshot (read-only for pybreaker's purposes)."""

    def __init__(self) -> None:
        super().__init__("mirror")
        self.snap = Snapshot()

    @property
    def state(self) -> str:
        return self.snap.state

    @state.setter
    def state(self, state: str) -> None:
        # pybreaker writes here only from its own call path, which this class never uses.
        pass

    def increment_counter(self) -> None:
        pass

    def reset_counter(self) -> None:
        pass

    def increment_success_counter(self) -> None:
        pass

    def reset_success_counter(self) -> None:
        pass

    @property
    def counter(self) -> int:
        return self.snap.failures

    @property
    def success_counter(self) -> int:
        return 0

    @property
    def opened_at(self) -> datetime | None:
        opened = self.snap.opened_at
        return None if opened is None else datetime.fromtimestamp(opened, UTC)

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        pass


class _TransitionListener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: AsyncCircuitBreaker) -> None:
        self.owner = owner

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else None
        if old is None or old == new_state.name:
            return
        self.owner._notify(
            Transition(
                str(cb.name),
                API_STATE[old],
                API_STATE[new_state.name],
                _now(),
                local=self.owner._changing_locally,
            )
        )


def _now() -> datetime:
    return datetime.now(UTC)


class AsyncCircuitBreaker:
    """One named breaker: `async with breaker.guard(): await call()`."""

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout: float,
        store: BreakerStore | None = None,
        trial_ttl: float | None = None,
        is_failure: Callable[[BaseException], bool] | None = None,
        history: int = 50,
    ) -> None:
        self.store: BreakerStore = store or MemoryBreakerStore()
        self._mirror = _MirrorStorage()
        self.pybreaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            name=name,
            state_storage=self._mirror,
            listeners=[_TransitionListener(self)],
        )
        #: How long a half-open trial may hold its slot before another caller may try.
        self.trial_ttl = trial_ttl if trial_ttl is not None else max(reset_timeout, 30.0)
        self._is_failure = is_failure or (lambda _exc: True)
        self.transitions: deque[Transition] = deque(maxlen=history)
        self._callbacks: list[TransitionCallback] = []
        self._rejection_callbacks: list[Callable[[CircuitOpenError], None]] = []
        self._changing_locally = False
        self._open = asyncio.Event()

    @property
    def name(self) -> str:
        """The breaker's name, e.g. "BGG API"."""
        return str(self.pybreaker.name)

    @property
    def fail_max(self) -> int:
        """Failed calls in a row that open the breaker."""
        return int(self.pybreaker.fail_max)

    @property
    def reset_timeout(self) -> float:
        """Seconds the breaker stays open before it admits one trial call."""
        return float(self.pybreaker.reset_timeout)

    @property
    def last_known_state(self) -> str:
        """The state as this process last saw it (no I/O; pybreaker's spelling)."""
        return self._mirror.snap.state

    def on_transition(self, callback: TransitionCallback) -> None:
        """Call `callback` on every real state change this process observes."""
        self._callbacks.append(callback)

    def on_rejection(self, callback: Callable[[CircuitOpenError], None]) -> None:
        """Call `callback` on every call rejected without running (metrics count them)."""
        self._rejection_callbacks.append(callback)

    async def snapshot(self) -> Snapshot:
        """The current (shared) state; also brings the pybreaker mirror up to date."""
        return self._observe(await self.store.load(), local=False)

    async def reset(self, state: str = CLOSED) -> Snapshot:
        """Force a state; for operators and tests."""
        return self._observe(await self.store.reset(state, _now().timestamp()), local=True)

    def seconds_until_half_open(self, snap: Snapshot) -> float | None:
        """Seconds left before an open breaker admits a trial; None unless open."""
        if snap.state != OPEN or snap.opened_at is None:
            return None
        return max(0.0, snap.opened_at + self.reset_timeout - _now().timestamp())

    async def reject_while_open(self) -> None:
        """Raise the `CircuitOpenError` that `guard` would raise, when this process last saw
        the breaker open and the store says it still is, before its reset timeout; else
        return, and the caller goes on to `guard` (which decides everything else).

        For callers with work to set up before `guard` (a retry loop): a rejection then costs
        one store read and nothing more. A breaker this process saw closed costs nothing here.
        """
        if self.last_known_state != OPEN:
            return
        snap = self._observe(await self.store.load(), local=False)
        # `step_begin_trial`'s refusal of an open breaker, on the same snapshot.
        opened_at = snap.opened_at
        if snap.state == OPEN and opened_at is not None:
            if _now().timestamp() >= opened_at + self.reset_timeout:
                return  # a trial is due: `guard` claims it
            rejection = self._rejection(snap)
            for callback in self._rejection_callbacks:
                callback(rejection)
            raise rejection

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block if the breaker admits it; record how it ended.

        Raises `CircuitOpenError` at once, without running the block, while the breaker is
        open or another caller holds the half-open trial.
        """
        snap = self._observe(await self.store.load(), local=False)
        token: str | None = None
        if snap.state != CLOSED:
            token = uuid.uuid4().hex
            claimed, snap = await self.store.try_begin_trial(
                token, self.reset_timeout, _now().timestamp(), self.trial_ttl
            )
            self._observe(snap, local=True)
            if not claimed:
                rejection = self._rejection(snap)
                for callback in self._rejection_callbacks:
                    callback(rejection)
                raise rejection
        generation = snap.generation
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Cancellation (or interpreter exit) says nothing about the upstream.
                if token is not None:
                    self._observe(await self.store.release_trial(token), local=True)
                raise
            failed = self._is_failure(exc)
            await self._record(token, generation, success=not failed)
            raise
        else:
            await self._record(token, generation, success=True)

    async def _record(self, token: str | None, generation: int, *, success: bool) -> None:
        now = _now().timestamp()
        if token is not None:
            snap = await self.store.end_trial(token, success, now)
        elif success:
            snap = await self.store.record_success(generation)
        else:
            snap = await self.store.record_failure(generation, self.fail_max, now)
        self._observe(snap, local=True)

    def _rejection(self, snap: Snapshot) -> CircuitOpenError:
        now = _now().timestamp()
        if snap.state == OPEN and snap.opened_at is not None:
            wait = snap.opened_at + self.reset_timeout - now
        else:
            # Half-open with the trial under way: its answer is due soon.
            wait = 1.0
        return CircuitOpenError(self.name, snap.state, max(1.0, float(math.ceil(wait))))

    def _observe(self, snap: Snapshot, *, local: bool) -> Snapshot:
        self._mirror.snap = snap
        # Reading `state` makes pybreaker notice a change made by any worker and tell the
        # listeners, old state and new.
        self._changing_locally = local
        try:
            _ = self.pybreaker.state
        finally:
            self._changing_locally = False
        return snap

    async def wait_open(self) -> None:
        """Return once this process sees the breaker open (at once if it already is)."""
        await self._open.wait()

    def _notify(self, transition: Transition) -> None:
        if transition.to_state == "open":
            self._open.set()
        else:
            self._open.clear()
        self.transitions.append(transition)
        level = logging.WARNING if transition.to_state == "open" else logging.INFO
        logger.log(
            level,
            "circuit breaker %r: %s -> %s",
            transition.breaker,
            transition.from_state,
            transition.to_state,
        )
        for callback in self._callbacks:
            try:
                callback(transition)
            except Exception:
                logger.exception("breaker transition callback failed")
