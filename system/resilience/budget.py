"""A retry budget: under a sustained outage, retries add at most a fixed share of traffic.

The token-bucket form used by gRPC's retry throttling and the AWS SDKs: every first attempt
deposits `ratio` tokens, every retry spends one, and retries stop when the bucket is empty.
A full bucket (`capacity` tokens) lets a short burst of failures be retried normally; once
it has drained, at most `ratio` retries are made per first attempt.
"""

from __future__ import annotations


class RetryBudget:
    """Token bucket shared by every call of one client (one per worker)."""

    def __init__(self, ratio: float, *, capacity: float = 10.0) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError("ratio must be between 0 and 1")
        self.ratio = ratio
        self.capacity = capacity
        self.tokens = capacity
        self.exhausted = 0

    def deposit(self) -> None:
        """A first attempt was made."""
        self.tokens = min(self.capacity, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; False (and no retry) when the budget is spent."""
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.exhausted += 1
        return False
