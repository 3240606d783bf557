"""Where a circuit breaker's state lives, and the atomic steps that change it.

Every decision that changes a breaker (count a failure, open, admit the one half-open trial,
close) is one atomic step of a store, so that several workers sharing a store (Redis) open
the breaker after exactly `fail_max` failures between them, and admit exactly one trial.

`generation` grows by one on every state change. A request admitted in an older generation
has lost its say: its late answer neither counts as a failure nor closes anything. The
half-open trial is identified by a token, so only the request that holds it decides how the
trial ended.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"  # pybreaker's spelling; the API says half_open


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A breaker's state at one moment. Times are UTC epoch seconds."""

    state: str = CLOSED
    failures: int = 0
    opened_at: float | None = None
    generation: int = 0
    trial_token: str | None = None
    trial_until: float | None = None
    last_failure_at: float | None = None

    def trial_free(self, now: float) -> bool:
        """Whether no live trial holds the half-open slot."""
        return self.trial_token is None or self.trial_until is None or now >= self.trial_until


class BreakerStore(Protocol):
    """The atomic steps of the breaker's state machine (see the module docstring)."""

    async def load(self) -> Snapshot:
        """The current state."""
        ...

    async def record_failure(self, generation: int, fail_max: int, now: float) -> Snapshot:
        """Count a failure admitted in `generation`; open at `fail_max` while closed."""
        ...

    async def record_success(self, generation: int) -> Snapshot:
        """A success admitted in `generation` resets the failure count while closed."""
        ...

    async def try_begin_trial(
        self, token: str, reset_timeout: float, now: float, trial_ttl: float
    ) -> tuple[bool, Snapshot]:
        """Claim the half-open trial: from open once `reset_timeout` has passed, or from a
        half-open state whose trial slot is free. True when `token` now holds it."""
        ...

    async def end_trial(self, token: str, success: bool, now: float) -> Snapshot:
        """The trial held by `token` ended: success closes, failure re-opens."""
        ...

    async def release_trial(self, token: str) -> Snapshot:
        """The trial was cancelled: free the slot and change nothing else."""
        ...

    async def reset(self, state: str, now: float) -> Snapshot:
        """Force a state (operators and tests); a new generation begins."""
        ...


def step_failure(snap: Snapshot, generation: int, fail_max: int, now: float) -> Snapshot:
    """The pure transition behind `record_failure` (the Redis script mirrors it)."""
    if snap.state != CLOSED or snap.generation != generation:
        return snap
    failures = snap.failures + 1
    if failures >= fail_max:
        return Snapshot(
            state=OPEN,
            failures=failures,
            opened_at=now,
            generation=snap.generation + 1,
            last_failure_at=now,
        )
    return replace(snap, failures=failures, last_failure_at=now)


def step_success(snap: Snapshot, generation: int) -> Snapshot:
    """The pure transition behind `record_success`."""
    if snap.state != CLOSED or snap.generation != generation or snap.failures == 0:
        return snap
    return replace(snap, failures=0)


def step_begin_trial(
    snap: Snapshot, token: str, reset_timeout: float, now: float, trial_ttl: float
) -> tuple[bool, Snapshot]:
    """The pure transition behind `try_begin_trial`."""
    if snap.state == OPEN:
        if snap.opened_at is not None and now < snap.opened_at + reset_timeout:
            return False, snap
        return True, replace(
            snap,
            state=HALF_OPEN,
            generation=snap.generation + 1,
            trial_token=token,
            trial_until=now + trial_ttl,
        )
    if snap.state == HALF_OPEN and snap.trial_free(now):
        return True, replace(snap, trial_token=token, trial_until=now + trial_ttl)
    return False, snap


def step_end_trial(snap: Snapshot, token: str, success: bool, now: float) -> Snapshot:
    """The pure transition behind `end_trial`."""
    if snap.state != HALF_OPEN or snap.trial_token != token:
        return snap
    if success:
        return Snapshot(
            state=CLOSED, generation=snap.generation + 1, last_failure_at=snap.last_failure_at
        )
    return Snapshot(
        state=OPEN,
        failures=snap.failures,
        opened_at=now,
        generation=snap.generation + 1,
        last_failure_at=now,
    )


def step_release_trial(snap: Snapshot, token: str) -> Snapshot:
    """The pure transition behind `release_trial`."""
    if snap.state != HALF_OPEN or snap.trial_token != token:
        return snap
    return replace(snap, trial_token=None, trial_until=None)


def step_reset(snap: Snapshot, state: str, now: float) -> Snapshot:
    """The pure transition behind `reset`."""
    if state not in (CLOSED, OPEN, HALF_OPEN):
        raise ValueError(f"unknown breaker state {state!r}")
    return Snapshot(
        state=state,
        opened_at=now if state == OPEN else None,
        generation=snap.generation + 1,
        last_failure_at=snap.last_failure_at,
    )


class MemoryBreakerStore:
    """State in this process only. Each step runs without an `await`, so it is atomic."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._snap = snapshot or Snapshot()

    mode = "memory"

    @property
    def snapshot(self) -> Snapshot:
        """The state, read without awaiting."""
        return self._snap

    def adopt(self, snapshot: Snapshot) -> None:
        """Take over a state read elsewhere (the shared store's last known state)."""
        self._snap = snapshot

    async def load(self) -> Snapshot:
        return self._snap

    async def record_failure(self, generation: int, fail_max: int, now: float) -> Snapshot:
        self._snap = step_failure(self._snap, generation, fail_max, now)
        return self._snap

    async def record_success(self, generation: int) -> Snapshot:
        self._snap = step_success(self._snap, generation)
        return self._snap

    async def try_begin_trial(
        self, token: str, reset_timeout: float, now: float, trial_ttl: float
    ) -> tuple[bool, Snapshot]:
        claimed, self._snap = step_begin_trial(self._snap, token, reset_timeout, now, trial_ttl)
        return claimed, self._snap

    async def end_trial(self, token: str, success: bool, now: float) -> Snapshot:
        self._snap = step_end_trial(self._snap, token, success, now)
        return self._snap

    async def release_trial(self, token: str) -> Snapshot:
        self._snap = step_release_trial(self._snap, token)
        return self._snap

    async def reset(self, state: str, now: float) -> Snapshot:
        self._snap = step_reset(self._snap, state, now)
        return self._snap
