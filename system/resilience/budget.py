"""A retry budget: under a sustained outage, retries add at most a fixed share of traffic.

A token bucket in the manner of Finagle's RetryBudget, gRPC's retry throttling and the AWS
SDKs: every first attempt deposits `ratio` tokens, time deposits `min_per_second` tokens a
second (so a trickle of calls can always be retried), and every retry spends one token. A full
bucket (`capacity`) lets a burst of failures be retried normally; once it has drained, retries
are at most `ratio` of the first attempts plus `min_per_second`.

Sizing `ratio`: an upstream that fails a share `p` of requests needs p + p^2 + ... retries
per first attempt (0.24 for 20 % and 3 attempts). A ratio well above that (the default 0.5)
keeps the bucket from draining at any call rate, so such flakiness is absorbed, while a dead
upstream still gets about (1 + ratio) times the first attempts instead of 3 times.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RetryBudget:
    """Token bucket shared by every call of one client (one per worker)."""

    def __init__(
        self,
        ratio: float,
        *,
        min_per_second: float = 0.0,
        capacity: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError("ratio must be between 0 and 1")
        if min_per_second < 0:
            raise ValueError("min_per_second must not be negative")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.capacity = capacity
        self.tokens = capacity
        self.exhausted = 0
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.min_per_second)
        self._last = now

    def deposit(self) -> None:
        """A first attempt was made."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; False (and no retry) when the budget is spent."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.exhausted += 1
        return False
