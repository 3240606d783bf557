"""Retry loops: only what may be retried, Retry-After honoured, never past the deadline."""

from __future__ import annotations

import logging

import pytest

from system.resilience.budget import RetryBudget
from system.resilience.retry import RetryPolicy, build_retrying

LOG = logging.getLogger("test.retry")


class Transient(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("transient")
        self.retry_after = retry_after


class Permanent(Exception):
    pass


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(policy: RetryPolicy, errors: list[Exception], **kwargs: object) -> tuple[int, Sleeps]:
    sleeps = Sleeps()
    retrying = build_retrying(
        policy,
        retryable=lambda e: isinstance(e, Transient),
        logger=LOG,
        what="call",
        sleep=sleeps,
        **kwargs,  # type: ignore[arg-type]
    )
    attempts = 0
    async for attempt in retrying:
        with attempt:
            attempts = attempt.retry_state.attempt_number
            if errors:
                raise errors.pop(0)
    return attempts, sleeps


async def test_retries_transient_errors_with_full_jitter(caplog: pytest.LogCaptureFixture) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    with caplog.at_level(logging.WARNING):
        attempts, sleeps = await run(policy, [Transient(), Transient()])
    assert attempts == 3
    assert len(sleeps.waits) == 2 and all(0 <= w <= 10 for w in sleeps.waits)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "attempt 1 of 3" in warnings[0].getMessage()


async def test_gives_up_after_the_attempts_and_reraises() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    with pytest.raises(Transient):
        await run(policy, [Transient(), Transient(), Transient(), Transient()])


async def test_never_retries_other_errors() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    errors: list[Exception] = [Permanent()]
    with pytest.raises(Permanent):
        await run(policy, errors)


async def test_waits_what_retry_after_says() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    _, sleeps = await run(policy, [Transient(retry_after=7)])
    assert sleeps.waits == [7]


@pytest.mark.parametrize(
    ("retry_after", "waits"),
    [(0, [0.0]), (0.5, [0.5]), (-1, [2.0]), (None, [2.0]), ("soon", [2.0])],
)
async def test_retry_after_counts_from_zero_and_anything_else_means_the_backoff(
    retry_after: object, waits: list[float]
) -> None:
    """Zero and fractions are waited as asked; a negative, missing or non-numeric value
    falls back to the policy's own wait (here a fixed 2 s)."""
    policy = RetryPolicy(attempts=2, initial_wait=1, min_wait=2, max_wait=2, jitter=False)
    _, sleeps = await run(policy, [Transient(retry_after=retry_after)])  # type: ignore[arg-type]
    assert sleeps.waits == waits


async def test_an_error_without_retry_after_waits_the_backoff() -> None:
    policy = RetryPolicy(attempts=2, initial_wait=1, min_wait=2, max_wait=2, jitter=False)
    sleeps = Sleeps()
    retrying = build_retrying(
        policy, retryable=lambda e: isinstance(e, OSError), logger=LOG, what="call", sleep=sleeps
    )
    errors = [OSError("reset")]  # carries no retry_after at all
    async for attempt in retrying:
        with attempt:
            if errors:
                raise errors.pop(0)
    assert sleeps.waits == [2.0]


async def test_the_backoff_scales_with_the_initial_wait_and_stops_at_the_max() -> None:
    """Full jitter waits uniformly up to min(max_wait, initial_wait * 2**n): never above it
    (so these checks cannot fail on the real policy), while a backoff that dropped either
    setting would wait up to 2**n s and break them all but surely over 11 waits."""
    small = RetryPolicy(attempts=12, initial_wait=0.001, max_wait=100)
    _, sleeps = await run(small, [Transient()] * 11)
    assert all(w <= 0.001 * 2**n for n, w in enumerate(sleeps.waits, start=1))
    capped = RetryPolicy(attempts=12, initial_wait=1, max_wait=0.5)
    _, sleeps = await run(capped, [Transient()] * 11)
    assert len(sleeps.waits) == 11 and max(sleeps.waits) <= 0.5
    # without jitter: exactly initial_wait * 2**n, from min_wait up to max_wait
    plain = RetryPolicy(attempts=5, initial_wait=0.25, min_wait=0, max_wait=1, jitter=False)
    _, sleeps = await run(plain, [Transient()] * 4)
    assert sleeps.waits == [0.25, 0.5, 1.0, 1.0]


def test_a_policy_describes_itself_for_the_status_endpoint() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.5, max_wait=8, deadline=30)
    assert policy.describe() == {
        "attempts": 3,
        "initial_wait": 0.5,
        "max_wait": 8,
        "deadline": 30,
        "min_wait": 0.0,
        "jitter": True,
    }


async def test_never_sleeps_past_the_deadline() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    with pytest.raises(Transient):
        await run(policy, [Transient(retry_after=20), Transient()])


async def test_spec_thumbnail_policy_waits_2_to_10_seconds() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, min_wait=2, max_wait=10, jitter=False)
    _, sleeps = await run(policy, [Transient(), Transient()])
    assert sleeps.waits == [2, 2]
    longer = RetryPolicy(attempts=6, initial_wait=1, min_wait=2, max_wait=10, jitter=False)
    _, sleeps = await run(longer, [Transient()] * 5)
    assert sleeps.waits == [2, 2, 4, 8, 10]


async def test_budget_caps_retries_under_a_sustained_outage() -> None:
    """Retries add at most ~ratio of the first attempts once the bucket has drained."""
    budget = RetryBudget(0.1, capacity=10)
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    first_attempts = retries = 0
    for _ in range(1000):
        budget.deposit()
        first_attempts += 1
        errors: list[Exception] = [Transient(), Transient(), Transient()]
        with pytest.raises(Transient):
            await run(policy, errors, budget=budget)
        retries += 3 - len(errors) - 1
    assert retries <= 0.1 * first_attempts + 10
    assert retries >= 0.1 * first_attempts - 1
    assert budget.exhausted > 0


def test_budget_refuses_a_bad_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(1.5)
    with pytest.raises(ValueError, match="min_per_second"):
        RetryBudget(0.1, min_per_second=-1)


def test_budget_floor_refills_with_time() -> None:
    now = [0.0]
    budget = RetryBudget(0.0, min_per_second=2, capacity=10, clock=lambda: now[0])
    for _ in range(10):
        assert budget.try_spend()
    assert not budget.try_spend()
    now[0] += 0.5  # one token's worth of time
    assert budget.try_spend()
    assert not budget.try_spend()
    now[0] += 100  # never more than the capacity
    assert sum(budget.try_spend() for _ in range(20)) == 10


async def test_each_retry_is_logged_with_the_attempt_the_error_and_the_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        await run(policy, [Transient(retry_after=2), Transient(retry_after=3)])
    assert [r.getMessage() for r in caplog.records] == [
        "call failed (attempt 1 of 3: Transient: transient); retrying in 2.00 s",
        "call failed (attempt 2 of 3: Transient: transient); retrying in 3.00 s",
    ]
