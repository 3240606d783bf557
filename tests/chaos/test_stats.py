"""The exact distributions the statistical hypotheses take their thresholds from: checked
against closed forms, and against the service's own retry loop and retry budget."""

from __future__ import annotations

import logging
import math
import random
from fractions import Fraction

import pytest

from chaos.stats import (
    binomial_pmf,
    lower_tail,
    max_failures,
    retried_failures,
    upper_tail,
)
from system.resilience.budget import RetryBudget
from system.resilience.retry import RetryPolicy, build_retrying


def test_binomial_pmf_is_the_binomial() -> None:
    pmf = binomial_pmf(12, 0.3)
    assert math.fsum(pmf) == pytest.approx(1.0, abs=1e-12)
    for i, value in enumerate(pmf):
        assert value == pytest.approx(math.comb(12, i) * 0.3**i * 0.7 ** (12 - i), rel=1e-9)
    assert binomial_pmf(3, 0.0) == [1.0, 0.0, 0.0, 0.0]
    assert binomial_pmf(3, 1.0) == [0.0, 0.0, 0.0, 1.0]


def test_binomial_pmf_has_no_overflow_for_large_n() -> None:
    pmf = binomial_pmf(5000, 0.5)
    assert math.fsum(pmf) == pytest.approx(1.0, abs=1e-9)


def test_tails_and_the_threshold() -> None:
    pmf = binomial_pmf(200, 0.008)
    k = max_failures(pmf, 1e-6)
    assert upper_tail(pmf, k) <= 1e-6 < upper_tail(pmf, k - 1)
    assert upper_tail(pmf, k) + lower_tail(pmf, k) == pytest.approx(1.0)
    q = Fraction(8, 1000)
    exact = sum(math.comb(200, i) * q**i * (1 - q) ** (200 - i) for i in range(11, 201))
    assert upper_tail(pmf, 10) == pytest.approx(float(exact), rel=1e-9)
    assert k == 10


def test_without_a_budget_a_retried_call_fails_when_every_attempt_does() -> None:
    pmf = retried_failures(50, 0.2, 3)
    assert pmf == pytest.approx(binomial_pmf(50, 0.008), rel=1e-9)


def test_a_budget_that_never_runs_dry_changes_nothing() -> None:
    # One token per call, 3 attempts spend at most 2, and the bucket holds more than all.
    pmf = retried_failures(40, 0.2, 3, budget_ratio=1.0, budget_capacity=100)
    for got, want in zip(pmf, binomial_pmf(40, 0.008), strict=True):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_an_empty_budget_allows_no_retry() -> None:
    pmf = retried_failures(30, 0.2, 3, budget_ratio=0.0, budget_capacity=0.0)
    for got, want in zip(pmf, binomial_pmf(30, 0.2), strict=True):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


async def _failed_calls(rng: random.Random, calls: int, ratio: float, capacity: float) -> int:
    """`calls` sequential calls through the service's retry loop and budget, each attempt
    failing with probability 0.2; the clock stands still (no refill by time)."""
    budget = RetryBudget(ratio, capacity=capacity, clock=lambda: 0.0)
    policy = RetryPolicy(attempts=3, initial_wait=0, max_wait=0, deadline=None)

    async def no_sleep(seconds: float) -> None:
        return None

    failed = 0
    for _ in range(calls):
        budget.deposit()
        retrying = build_retrying(
            policy,
            retryable=lambda e: isinstance(e, ConnectionError),
            logger=logging.getLogger("test.stats"),
            what="call",
            budget=budget,
            sleep=no_sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if rng.random() < 0.2:
                        raise ConnectionError("flaky")
        except ConnectionError:
            failed += 1
    return failed


async def test_the_budget_model_matches_the_service_retry_loop() -> None:
    # A budget small enough to bind often, so the model's budget part is what is compared.
    calls, ratio, capacity, runs = 20, 0.3, 2.0, 500
    pmf = retried_failures(calls, 0.2, 3, budget_ratio=ratio, budget_capacity=capacity)
    model_mean = math.fsum(i * p for i, p in enumerate(pmf))
    model_sd = math.sqrt(math.fsum((i - model_mean) ** 2 * p for i, p in enumerate(pmf)))
    rng = random.Random(2026)
    seen = [await _failed_calls(rng, calls, ratio, capacity) for _ in range(runs)]
    mean = sum(seen) / runs
    # Far from the no-budget mean (0.16), and within 4 standard errors of the model.
    assert model_mean > 0.5
    assert abs(mean - model_mean) < 4 * model_sd / math.sqrt(runs)


def test_dropping_negligible_states_loses_no_visible_mass() -> None:
    pmf = retried_failures(200, 0.2, 3, budget_ratio=0.5)
    assert math.fsum(pmf) == pytest.approx(1.0, abs=1e-12)
