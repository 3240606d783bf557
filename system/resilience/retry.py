"""Retry policies as named, printable objects, and the tenacity loops built from them.

A fresh `AsyncRetrying` is built for every call (a shared one used with `async for` mixes up
concurrent calls), and the attempt count of a call is read from its own retry state rather
than the shared `.statistics`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from system.resilience.budget import RetryBudget

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one call is retried (times in seconds).

    `jitter=True`: full-jitter exponential waits (`wait_random_exponential`), the right
    choice when many callers retry against one upstream. `jitter=False`: plain exponential
    waits between `min_wait` and `max_wait` (the spec's thumbnail policy). `deadline`, when
    set, bounds the whole call: the loop stops before a wait that would end after it.
    """

    attempts: int
    initial_wait: float
    max_wait: float
    deadline: float | None = None
    min_wait: float = 0.0
    jitter: bool = True

    def describe(self) -> dict[str, Any]:
        """The policy as plain data, for the status endpoint."""
        return asdict(self)


class _wait_retry_after_or_backoff:
    """Wait what the upstream asked for (`retry_after` on the error), else the backoff."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff: wait_base
        if policy.jitter:
            self._backoff = wait_random_exponential(
                multiplier=policy.initial_wait, max=policy.max_wait
            )
        else:
            self._backoff = wait_exponential(
                multiplier=policy.initial_wait, min=policy.min_wait, max=policy.max_wait
            )

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return float(retry_after)
        return float(self._backoff(retry_state))


class _stop_when_budget_spent(stop_base):
    """Stops when the budget has no token; evaluated last, so a token pays only for a retry."""

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not self.budget.try_spend()


def build_retrying(
    policy: RetryPolicy,
    *,
    retryable: Callable[[BaseException], bool],
    logger: logging.Logger,
    what: str,
    budget: RetryBudget | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncRetrying:
    """A new retry loop for one call under `policy`.

    Retries only errors `retryable` accepts; never sleeps past the deadline (the loop stops
    before a wait that would end after it); logs a WARNING before each wait; re-raises the
    last error when it gives up.
    """
    stops: list[stop_base] = [stop_after_attempt(policy.attempts)]
    if policy.deadline is not None:
        stops.append(stop_before_delay(policy.deadline))
    if budget is not None:
        stops.append(_stop_when_budget_spent(budget))

    def before_sleep(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        logger.warning(
            "%s failed (attempt %d of %d: %s: %s); retrying in %.2f s",
            what,
            retry_state.attempt_number,
            policy.attempts,
            type(exc).__name__,
            exc,
            retry_state.upcoming_sleep,
        )

    return AsyncRetrying(
        stop=stop_any(*stops),
        wait=_wait_retry_after_or_backoff(policy),
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep,
    )
