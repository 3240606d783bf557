"""Which recorded failures are worth retrying later (transient) and which are not (permanent).

Transient: timeouts, network errors, 5xx answers, an open breaker, a shutdown mid-download;
for BGG, the errors its retry loop retries (`BggTransientError`, `BggTimeout`,
`BggRateLimited`), `BggUnavailable` and `ParseProcessLost`.
Permanent: a refused URL, a missing image, a wrong content type, an oversized body; for BGG,
`GameNotFound`, `BggRequestError`, `BggAuthError`, `BggBadResponse`. An
error type this module does not know is permanent: retrying a bug in a loop helps no one.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import httpx

from system.bgg.errors import BggError, BggUnavailable
from system.tasks.thumbnails import ThumbnailError

FailureClass = Literal["transient", "permanent"]
T = TypeVar("T")


def _subclasses(cls: type[T]) -> list[type[T]]:
    found: list[type[T]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


#: httpx's timeouts and network errors, by the name a failure row records.
_NETWORK = {c.__name__ for c in (httpx.TimeoutException, httpx.NetworkError)} | {
    c.__name__
    for base in (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
    for c in [base, *_subclasses(base)]
}

TRANSIENT_ERROR_TYPES: frozenset[str] = frozenset(
    _NETWORK
    | {"DNSError", "TimeoutError", "ShutdownCancelled"}
    # Classes that name their own error_type (ThumbnailNetworkError records httpx's names).
    | {c.error_type for c in _subclasses(ThumbnailError) if c.transient and "error_type" in vars(c)}
    # BGG (`bgg_import` rows record the class name): what its retry loop retries (5xx, 202,
    # 429, timeouts, network errors), an open breaker, and a parse process that died (the
    # next import parses in a new one). GameNotFound, BggRequestError, BggAuthError and
    # BggBadResponse are BGG's (or our configuration's) answers: permanent.
    | {c.__name__ for c in _subclasses(BggError) if c.retryable}
    | {BggUnavailable.__name__, "ParseProcessLost"}
)


def classify(error_type: str | None) -> FailureClass:
    """`transient` or `permanent` for a failure row's `error_type`."""
    return "transient" if error_type in TRANSIENT_ERROR_TYPES else "permanent"
