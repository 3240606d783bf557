"""Small statistics: percentiles of latency samples, and the exact failure-count
distributions the statistical hypotheses take their thresholds from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) by the nearest-rank method; None for no values.

    The one percentile of raw samples in the harness (chaos, benchmarks): the value at rank
    `ceil(q/100 * n)`, which is `numpy.percentile(values, q, method="inverted_cdf")`. Nearest
    rank never interpolates below an observed value, so "p99 < 50 ms" is a claim about a
    latency that really happened. (Load runs use Locust's histogram percentile instead, see
    `loadtests.windows`; the notebooks' duration quantiles interpolate like PostgreSQL's
    `percentile_cont`.)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, None when nothing was counted."""
    return None if whole == 0 else part / whole


def rounded(value: float | None, digits: int = 2) -> float | None:
    """`round()` that lets None through (figures may be missing)."""
    return None if value is None else round(value, digits)


def binomial_pmf(n: int, p: float) -> list[float]:
    """P(X = i) for i in 0..n, X ~ Binomial(n, p), each term computed in log space."""
    if p <= 0.0 or p >= 1.0:
        certain = n if p >= 1.0 else 0
        return [1.0 if i == certain else 0.0 for i in range(n + 1)]
    log_p, log_q = math.log(p), math.log1p(-p)
    return [math.exp(_log_comb(n, i) + i * log_p + (n - i) * log_q) for i in range(n + 1)]


def _log_comb(n: int, i: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)


def upper_tail(pmf: Sequence[float], k: int) -> float:
    """P(X > k) for the distribution `pmf` (P(X = i) at index i)."""
    return math.fsum(pmf[k + 1 :])


def lower_tail(pmf: Sequence[float], k: int) -> float:
    """P(X <= k) for the distribution `pmf`."""
    return math.fsum(pmf[: k + 1])


def max_failures(pmf: Sequence[float], false_alarm: float) -> int:
    """The smallest `k` with P(X > k) <= `false_alarm`: allow up to `k` failures and a
    service that behaves as `pmf` says is blamed with probability at most `false_alarm`."""
    for k in range(len(pmf)):
        if upper_tail(pmf, k) <= false_alarm:
            return k
    return len(pmf) - 1


#: States less likely than this are dropped from `retried_failures` (their total mass stays
#: many orders of magnitude below any false-alarm probability worth stating).
_NEGLIGIBLE = 1e-30


def retried_failures(
    n: int,
    p: float,
    attempts: int,
    *,
    budget_ratio: float | None = None,
    budget_capacity: float = 10.0,
) -> list[float]:
    """P(i of `n` calls fail) for i in 0..n, when each attempt fails independently with
    probability `p`, each call makes up to `attempts` attempts, and, with `budget_ratio`,
    a retry is made only while a `system.resilience.budget.RetryBudget` has a token.

    The calls are sequential and share one bucket, full at the start. The bucket's refill
    by time (`min_per_second`) is left out: it only adds tokens, so the distribution is the
    worst case for any call rate (a fast machine refills least). Without a budget it is the
    binomial with `p ** attempts`.
    """
    if budget_ratio is None:
        return binomial_pmf(n, p**attempts)
    # Tokens in whole units of 1/denominator: exact for ratios like 0.5 or 0.3.
    unit = Fraction(budget_ratio).limit_denominator(1000)
    scale = unit.denominator
    deposit, cost = unit.numerator, scale
    capacity = round(budget_capacity * scale)
    states: dict[tuple[int, int], float] = {(capacity, 0): 1.0}
    for _ in range(n):
        after: dict[tuple[int, int], float] = {}
        for (tokens, failed), chance in states.items():
            if chance < _NEGLIGIBLE:
                continue
            tokens = min(capacity, tokens + deposit)
            for attempt in range(1, attempts + 1):
                key = (tokens, failed)
                after[key] = after.get(key, 0.0) + chance * (1 - p)
                chance *= p
                if attempt == attempts or tokens < cost:
                    key = (tokens, failed + 1)
                    after[key] = after.get(key, 0.0) + chance
                    break
                tokens -= cost
        states = after
    pmf = [0.0] * (n + 1)
    for (_, failed), chance in states.items():
        pmf[failed] += chance
    return pmf
