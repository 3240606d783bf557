"""The default retry budget absorbs a steady 20 % flaky upstream (README), at any call rate."""

from __future__ import annotations

import random

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
