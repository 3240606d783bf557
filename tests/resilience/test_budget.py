"""The default retry budget absorbs a steady 20 % flaky upstream (README), at any call rate."""

from __future__ import annotations

import random

import pytest

from system.config import Settings
from system.resilience.budget import RetryBudget


def _calls(ratio: float, calls: int, failure_rate: float, attempts: int) -> tuple[int, int, int]:
    """(retries made, retries denied, calls failed) over `calls` sequential calls; the clock
    stands still, so nothing refills by time: the worst case, as if calls came infinitely fast."""
    budget = RetryBudget(ratio, clock=lambda: 0.0)
    rng = random.Random(20)
    retries = failed = 0
    for _ in range(calls):
        budget.deposit()
        attempt = 1
        while rng.random() < failure_rate:
            if attempt == attempts or not budget.try_spend():
                failed += 1
                break
            attempt += 1
            retries += 1
    return retries, budget.exhausted, failed


def test_the_default_ratio_funds_the_retries_of_a_20_percent_flaky_upstream() -> None:
    ratio = Settings.model_fields["bgg_retry_budget_ratio"].default
    assert ratio > 0.2 + 0.2**2, "more than the retries a call needs on average"
    _, denied, failed = _calls(ratio, 10_000, 0.2, 3)
    assert denied <= 10, "practically never the reason a call fails"
    assert failed < 0.008 * 10_000 * 1.3, "calls fail about as often as 3 attempts do"


def test_the_budget_still_caps_retries_when_the_upstream_is_dead() -> None:
    ratio = Settings.model_fields["bgg_retry_budget_ratio"].default
    retries, _, failed = _calls(ratio, 1_000, 1.0, 3)
    assert failed == 1_000
    assert retries <= ratio * 1_000 + 10, "at most ratio x the first attempts, plus the bucket"


class _Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("ratio", [-0.01, 1.01])
def test_a_ratio_outside_0_to_1_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match=r"^ratio must be between 0 and 1$"):
        RetryBudget(ratio)


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_the_ratios_edges_are_allowed(ratio: float) -> None:
    assert RetryBudget(ratio).ratio == ratio


def test_a_negative_time_allowance_is_refused_and_none_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"^min_per_second must not be negative$"):
        RetryBudget(0.5, min_per_second=-0.1)
    assert RetryBudget(0.5, min_per_second=0.0).min_per_second == 0.0


def test_a_full_bucket_funds_a_burst_of_retries_then_refuses_and_counts() -> None:
    budget = RetryBudget(0.5, capacity=3.0, clock=_Clock())
    assert [budget.try_spend() for _ in range(5)] == [True, True, True, False, False]
    assert budget.exhausted == 2
    assert budget.tokens == 0.0


def test_first_attempts_earn_retries_up_to_the_capacity() -> None:
    budget = RetryBudget(0.5, capacity=2.0, clock=_Clock())
    assert [budget.try_spend(), budget.try_spend(), budget.try_spend()] == [True, True, False]
    budget.deposit()
    assert not budget.try_spend(), "half a token is no retry"
    budget.deposit()
    assert budget.tokens == 1.0
    assert budget.try_spend(), "exactly one token is one retry"
    for _ in range(10):
        budget.deposit()
    assert budget.tokens == 2.0, "never above the capacity"


def test_time_refills_the_bucket_at_min_per_second_up_to_the_capacity() -> None:
    clock = _Clock()
    budget = RetryBudget(0.0, min_per_second=0.5, capacity=2.0, clock=clock)
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    clock.now += 1.0
    assert not budget.try_spend(), "half a token after one second"
    clock.now += 1.0
    assert budget.try_spend(), "one token after two seconds"
    clock.now += 1.0
    budget.deposit()  # a deposit refills by time too, then adds its ratio (0 here)
    assert budget.tokens == 0.5
    clock.now += 60.0
    assert budget.try_spend()
    assert budget.tokens == 1.0, "the capacity capped the refill"


def test_by_default_a_burst_of_ten_retries_is_funded_and_time_adds_nothing() -> None:
    # The service builds its budget with the default capacity and, unless configured, no
    # allowance by time.
    clock = _Clock()
    budget = RetryBudget(0.5, clock=clock)
    assert sum(budget.try_spend() for _ in range(11)) == 10
    clock.now += 3600.0
    assert not budget.try_spend()
    assert budget.exhausted == 2
