"""The BGG client's own error tree.

Everything that can go wrong talking to BoardGameGeek is turned into one of these at one
boundary (the client); nothing above it sees `httpx` exceptions. Each class says whether the
retry loop may try again (`retryable`) and whether one upstream request that ended this way
counts as a failure for the circuit breaker (`breaker_failure`). The table in README.md is
generated from the same facts; `tests/bgg/test_outcomes.py` checks every row. The HTTP status
and public code the API answers for each are the API's to choose (`BGG_ERRORS` in
`system/api/errors.py`): renaming a class here changes no answer.
"""

from __future__ import annotations


class BggError(Exception):
    """Base class of every error the BGG client raises."""

    retryable: bool = False
    breaker_failure: bool = True

    def __init__(self, message: str, *, bgg_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.bgg_id = bgg_id
        #: Attempts the client's retry loop made before giving up with this error (set by
        #: `BggClient.fetch_thing`; a `bgg_import` failure row records it as `retry_count`).
        self.attempts = 0


class GameNotFound(BggError):
    """BGG answered correctly that it has no such item (200 with an empty `<items>`)."""

    breaker_failure = False


class BggRequestError(BggError):
    """BGG answered correctly that our request was invalid (`<error message=...>`)."""

    breaker_failure = False


class BggTransientError(BggError):
    """BGG is temporarily unable to answer: 5xx, 202 queued, timeouts, network errors."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        bgg_id: int | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, bgg_id=bgg_id)
        #: Seconds the upstream asked us to wait (`Retry-After`), if it said.
        self.retry_after = retry_after
        self.status_code = status_code


class BggTimeout(BggTransientError):
    """The upstream did not answer in time (connect, read or total timeout)."""


class BggRateLimited(BggTransientError):
    """429 Too Many Requests: wait what `Retry-After` says, then try again."""


class BggAuthError(BggError):
    """401/403: the BGG token is missing, wrong or revoked. Retrying will not help."""


class BggBadResponse(BggError):
    """BGG answered 200 but not with XML we can read (HTML page, broken XML, an XML bomb)."""


class BggUnavailable(BggError):
    """The circuit breaker is open: no request was sent. Never retried, never counted."""

    breaker_failure = False

    def __init__(self, message: str, *, breaker: str, state: str, retry_after: float) -> None:
        super().__init__(message)
        self.breaker = breaker
        self.state = state
        #: Seconds until the breaker lets a trial request through.
        self.retry_after = retry_after
        #: Requests this import sent to BGG before the breaker stopped it (0: none at all).
        self.upstream_attempts = 0
