"""A stateful model of the BGG breaker + retry composition, checked by Hypothesis.

The real `AsyncCircuitBreaker` and `BggClient` (retry(breaker(timeout(request)))) run against
an `httpx.MockTransport` whose answer the rules choose; time moves with time-machine. After
every call the machine compares what happened (requests made, error raised, breaker state
and count) with a simple model of the spec:

- the breaker opens after `fail_max` consecutive failed requests (retries included);
- a not-found answer is a success: it is not retried and resets the count;
- a transient failure is retried up to `attempts` times, except the one that opens the
  breaker;
- while open, calls are rejected without a request;
- after the reset timeout exactly one trial request decides: success closes, failure
  re-opens (and is not retried).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import time_machine
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from system.bgg.client import BggClient, build_http_client
from system.bgg.errors import BggTransientError, BggUnavailable, GameNotFound
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.retry import RetryPolicy
from tests.conftest import FIXTURES

BRASS = (FIXTURES / "bgg" / "thing_28720_brass_lancashire_stats.xml").read_bytes()
EMPTY = (FIXTURES / "bgg" / "thing_10000000_nonexistent_empty.xml").read_bytes()
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FAIL_MAX = 5
RESET = 60.0
ATTEMPTS = 3


async def _no_sleep(_seconds: float) -> None:
    """Retry waits take no time: the model is about counts and states, not waits."""


class BreakerModel(RuleBasedStateMachine):
    """Rules: the upstream answers ok / transient / not found; time passes; a call."""

    def __init__(self) -> None:
        super().__init__()
        self.traveller = time_machine.travel(START, tick=False)
        self.clock = self.traveller.start()
        self.loop = asyncio.new_event_loop()
        self.answer = "ok"
        self.requests = 0
        http = build_http_client(
            connect_timeout=1, read_timeout=1, transport=httpx.MockTransport(self._upstream)
        )
        self.client = BggClient(
            base_url="http://bgg.test/xmlapi2",
            http=http,
            breaker=AsyncCircuitBreaker("BGG API", fail_max=FAIL_MAX, reset_timeout=RESET),
            policy=RetryPolicy(attempts=ATTEMPTS, initial_wait=1, max_wait=10),
            request_timeout=5,
            max_id=10_000_000,
            sleep=_no_sleep,
            clock=lambda: 0.0,  # no deadline in this model
        )
        # The model.
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.now = 0.0

    def _upstream(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.answer == "transient":
            return httpx.Response(503, text="<html>Service Unavailable</html>")
        if self.answer == "not_found":
            return httpx.Response(200, content=EMPTY)
        return httpx.Response(200, content=BRASS)

    def teardown(self) -> None:
        self.loop.run_until_complete(self.client.http.aclose())
        self.loop.close()
        self.traveller.stop()

    # ------------------------------------------------------------------ rules

    @rule(answer=st.sampled_from(["ok", "transient", "not_found"]))
    def upstream_answers(self, answer: str) -> None:
        self.answer = answer

    @rule(seconds=st.sampled_from([1.0, 30.0, RESET - 1, RESET, RESET + 1]))
    def time_passes(self, seconds: float) -> None:
        self.clock.shift(seconds)
        self.now += seconds

    @rule()
    def call(self) -> None:
        expected_requests, expected_error = self._model_call()
        before = self.requests
        error: type[BaseException] | None = None
        try:
            self.loop.run_until_complete(self.client.fetch_thing(28720))
        except (BggUnavailable, BggTransientError, GameNotFound) as exc:
            error = type(exc)
        assert self.requests - before == expected_requests, (
            f"{self.answer}: {self.requests - before} requests, model says {expected_requests}"
        )
        assert error is expected_error, f"{self.answer}: raised {error}, model: {expected_error}"

    # ------------------------------------------------------------------ the model

    def _model_call(self) -> tuple[int, type[BaseException] | None]:
        """Apply one call to the model; (requests it makes, error it raises)."""
        if self.state == "open":
            if self.now < self.opened_at + RESET:
                return 0, BggUnavailable
            # Half-open: one trial, never retried.
            if self.answer == "transient":
                self.opened_at = self.now
                return 1, BggTransientError
            self.state, self.failures = "closed", 0
            return 1, GameNotFound if self.answer == "not_found" else None
        for attempt in range(1, ATTEMPTS + 1):
            if self.answer != "transient":
                self.failures = 0
                return attempt, GameNotFound if self.answer == "not_found" else None
            self.failures += 1
            if self.failures >= FAIL_MAX:
                self.state, self.opened_at = "open", self.now
                return attempt, BggTransientError  # the failure that opened it: not retried
        return ATTEMPTS, BggTransientError

    @invariant()
    def breaker_matches_model(self) -> None:
        snap = self.loop.run_until_complete(self.client.breaker.snapshot())
        real = "open" if snap.state in ("open", "half-open") else "closed"
        assert real == self.state, f"breaker {snap.state}, model {self.state}"
        if self.state == "closed":
            assert snap.failures == self.failures, f"count {snap.failures}, model {self.failures}"


TestBreakerModel = BreakerModel.TestCase
TestBreakerModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
