"""One JSON error shape for every error the API returns.

```json
{"error": {"status": 404, "code": "not_found", "message": "Game 12 not found"}}
```

Validation errors add `"fields": [{"field": "limit", "location": "query", "message": ...}]`
and name the fields in `message` too. Other errors may add keys (e.g. `breaker`, `state`,
`retry_after`); none are renamed. Storage outages (`system.db.errors.is_unavailable`: refused,
dropped or terminated connections, a server shutting down or full, a locked SQLite file)
answer 503 with `Retry-After`; a write whose commit fails answers 503 `commit_failed` (409
when it lost to a concurrent write), never a 2xx; unexpected errors answer 500 without a
stack trace, and the connection stays usable for the client's next request.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import sentry_sdk
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from system.bgg.errors import (
    BggAuthError,
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggRequestError,
    BggTimeout,
    BggTransientError,
    BggUnavailable,
    GameNotFound,
)
from system.bgg.parse_process import ParseProcessLost
from system.db.errors import (
    CommitFailed,
    describe,
    is_conflict,
    is_missing_table,
    is_unavailable,
)
from system.observability.sentry import (
    BGG_UNAVAILABLE_FINGERPRINT,
    DATABASE_UNAVAILABLE_FINGERPRINT,
    RateLimiter,
    never_reported,
)

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class ErrorAnswer(NamedTuple):
    """What the API answers for one domain error class."""

    status: int
    code: str


#: The answer to each BGG client error. Clients, the load runner and the notebooks match on
#: these codes, so each is written out here rather than derived from a class name; a
#: `BggError` subclass missing from this table fails `tests/api/test_errors_table.py`.
BGG_ERRORS: dict[type[BggError], ErrorAnswer] = {
    BggError: ErrorAnswer(502, "bgg_error"),
    GameNotFound: ErrorAnswer(404, "game_not_found"),
    BggRequestError: ErrorAnswer(422, "bgg_request_error"),
    BggTransientError: ErrorAnswer(502, "bgg_transient_error"),
    BggTimeout: ErrorAnswer(504, "bgg_timeout"),
    BggRateLimited: ErrorAnswer(502, "bgg_rate_limited"),
    BggAuthError: ErrorAnswer(502, "bgg_auth_error"),
    BggBadResponse: ErrorAnswer(502, "bgg_bad_response"),
    BggUnavailable: ErrorAnswer(503, "bgg_unavailable"),
    ParseProcessLost: ErrorAnswer(503, "parse_process_lost"),
}


def bgg_answer(exc: BggError) -> ErrorAnswer:
    """The answer to `exc`: its class's row, or its nearest listed parent's."""
    return next(BGG_ERRORS[cls] for cls in type(exc).__mro__ if cls in BGG_ERRORS)


class ApiError(Exception):
    """An error a route or service raises on purpose, rendered in the shared shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # None: error_response picks the status's own code
        self.code = code
        self.headers = headers
        self.extra = extra


#: Seconds a caller should wait after a storage outage answer (the migrator retries every 2 s).
DATABASE_RETRY_AFTER = "5"


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A JSONResponse in the shared error shape."""
    body = error_body(status, message, code=code, **extra)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def error_body(
    status: int, message: str, *, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The value of the shared shape's `error` key."""
    return {
        "status": status,
        "code": code or _CODES.get(status, "error"),
        "message": message,
        **extra,
    }


def handler_for(app: FastAPI, exc: Exception) -> Any:
    """The app's handler for `exc`, looked up as Starlette does (the nearest class first),
    for middleware that answers without the router; None when no handler takes it."""
    for cls in type(exc).__mro__:
        if cls in app.exception_handlers:
            return app.exception_handlers[cls]
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the shared shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BggError, _bgg_error)
    for db_error in (SQLAlchemyError, OSError):
        app.add_exception_handler(db_error, _database_error)
    app.add_exception_handler(CommitFailed, _commit_failed)
    # What fails outside the routes (in a middleware); see UnexpectedErrors for the rest.
    app.add_exception_handler(Exception, _crash)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, code=exc.code, headers=exc.headers, **exc.extra)


def _report(request: Request, exc: Exception, *, fingerprint: list[str] | None = None) -> None:
    """Send an error that was answered on purpose (not a crash) to Sentry.

    Building an event (frames, local variables) costs milliseconds, so nothing is built when
    Sentry is off. An error with a `fingerprint` is one Sentry issue however often it comes
    (the open breaker's rejections, a database outage's 503s: by the thousand, each with the
    driver's frames), so each fingerprint is reported at most once a minute per worker.
    """
    # A health check's event would be dropped: it must not use up the minute's one report.
    if not sentry_sdk.get_client().is_active() or never_reported(request.url.path):
        return
    limiter: RateLimiter = request.app.state.rejection_reports
    if fingerprint and not limiter.allow("/".join(fingerprint)):
        return
    with sentry_sdk.new_scope() as scope:
        if fingerprint:
            scope.fingerprint = fingerprint
        sentry_sdk.capture_exception(exc)


async def _bgg_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BggError)
    status, code = bgg_answer(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, BggUnavailable):
        extra = {
            "breaker": exc.breaker,
            "state": exc.state,
            "retry_after": exc.retry_after,
            "upstream_attempts": exc.upstream_attempts,
        }
        # The designed answer during an outage: not an error for the error-rate alert.
        request.state.breaker_rejection = True
    if status >= 500:
        unavailable = isinstance(exc, BggUnavailable)
        _report(request, exc, fingerprint=BGG_UNAVAILABLE_FINGERPRINT if unavailable else None)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if exc.bgg_id is not None:
        extra["bgg_id"] = exc.bgg_id
    return error_response(status, exc.message, code=code, headers=headers or None, **extra)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code, "error")
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        # pydantic's ErrorDetails always holds loc and msg; FastAPI puts the source first
        loc = [str(part) for part in err["loc"]]
        location = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or location
        fields.append({"field": name, "location": location, "message": err["msg"]})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, f"Invalid request: {summary}", fields=fields)


def database_unavailable() -> ApiError:
    """The 503 of a storage outage (the shared shape, `Retry-After`)."""
    return ApiError(
        503,
        "Database unavailable, try again shortly",
        code="database_unavailable",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def schema_not_ready() -> ApiError:
    """The 503 of a database whose schema is not at head yet (the shared shape)."""
    return ApiError(
        503,
        "Database not ready (its schema is being migrated), try again shortly",
        code="database_unavailable",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def _schema_at_head(request: Request) -> bool:
    services = getattr(request.app.state, "services", None)
    return services is not None and services.database.schema_ready


async def _commit_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CommitFailed)
    return await _api_error(request, commit_failed(exc))


def commit_failed(exc: Exception) -> ApiError:
    """The answer to a write whose commit failed: nothing was saved, and the caller is told.

    409 when it lost to a concurrent write, 503 (retry later) otherwise: an outage, or the
    database refusing the commit (a deferred constraint, a disk error).
    """
    logger.warning("commit failed: %s: %s", type(exc).__name__, describe(exc))
    if is_unavailable(exc):
        return database_unavailable()
    if is_conflict(exc):
        return ApiError(409, "The change conflicted with another one; nothing was saved")
    return ApiError(
        503,
        "The change could not be saved; nothing was changed, try again shortly",
        code="commit_failed",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_missing_table(exc) and not _schema_at_head(request):
        # Migrations have not run yet (AUTO_MIGRATE retrying while the database was down at
        # start, or off): readiness says so too. Not a bug; a retry later will do.
        logger.warning(
            "database schema not at head on %s %s: %s", request.method, request.url.path,
            describe(exc),
        )  # fmt: skip
        return await _api_error(request, schema_not_ready())
    if not is_unavailable(exc):
        return await _unexpected_error(request, exc)
    # A storage outage is a 503 the caller may retry, not a bug: log one line, no stack, and
    # no driver text (it can name roles and hosts).
    logger.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        describe(exc),
    )
    _report(request, exc, fingerprint=DATABASE_UNAVAILABLE_FINGERPRINT)
    return await _api_error(request, database_unavailable())


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Answered, not re-raised (see UnexpectedErrors): so the stack is logged and sent to
    # Sentry here, once.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if sentry_sdk.get_client().is_active():
        sentry_sdk.capture_exception(exc)
    return error_response(500, "Internal server error")


class UnexpectedErrors:
    """ASGI middleware: a 500 for any exception no handler took, and the connection stays open.

    Starlette's own handler for `Exception` answers and then re-raises, and uvicorn closes
    the connection after such an answer: a client's next request on that keep-alive
    connection finds it dead. This middleware answers instead and does not re-raise; it logs
    the stack and sends it to Sentry itself. Install it inside the metrics middleware, so the
    500 is counted.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer 500 if it raises before answering."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late to answer: let the server cut the connection
                raise
            response = await _unexpected_error(Request(scope), exc)
            await response(scope, receive, send)


async def _crash(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server (and Sentry) log the stack once.
    return error_response(500, "Internal server error")
