"""Which recorded `error_type`s are transient (retrying may help) and which are permanent.

The same split as the service's monitoring API (`failure_class`), restated here because the
analysis reads data and never imports the service; `tests/notebooks/test_errortypes.py`
checks the two lists agree. An unknown type is permanent, as in the service.
"""

from __future__ import annotations

from typing import Literal

FailureClass = Literal["transient", "permanent"]

#: Timeouts and network errors (httpx's names), 5xx from the CDN, an open breaker, a shutdown,
#: and BGG's retried errors on `bgg_import` jobs.
TRANSIENT_ERROR_TYPES: frozenset[str] = frozenset(
    {
        "BggRateLimited",
        "BggTimeout",
        "BggTransientError",
        "BggUnavailable",
        "CdnServerError",
        "CircuitBreakerOpen",
        "CloseError",
        "ConnectError",
        "ConnectTimeout",
        "DNSError",
        "NetworkError",
        "ParseProcessLost",
        "PoolTimeout",
        "ReadError",
        "ReadTimeout",
        "RemoteProtocolError",
        "ShutdownCancelled",
        "TimeoutError",
        "TimeoutException",
        "WriteError",
        "WriteTimeout",
    }
)

#: The permanent ones the service records (anything unknown is permanent too).
PERMANENT_ERROR_TYPES: frozenset[str] = frozenset(
    {
        "RefusedUrl",
        "UnsupportedContentType",
        "ContentTypeMismatch",
        "ThumbnailTooLarge",
        "ImageNotFound",
        "CdnHttpError",
        "GameNotFound",
        "BggRequestError",
        "BggAuthError",
        "BggBadResponse",
        "InvalidJobPayload",
        "UnknownTaskType",
        "LeaseExpired",
    }
)


def classify(error_type: str | None) -> FailureClass:
    """`transient` or `permanent` for a failure row's `error_type`."""
    return "transient" if error_type in TRANSIENT_ERROR_TYPES else "permanent"
