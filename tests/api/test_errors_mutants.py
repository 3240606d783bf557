"""The error mapping (`system/api/errors.py`) as clients and operators meet it.

Every error leaves the API in one JSON shape with a stable `code`, the headers a client
retries by (`Retry-After`, `Allow`), and one log line or Sentry event for the operator. These
tests raise each kind of error from a route of a real app (no lifespan: the routes touch
no database) and read what a client gets; they were written against the mutants that
`nox -s mutants -- system/api/errors.py` found surviving the rest of the suite.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from starlette.types import ASGIApp, Receive, Scope, Send

from system.api.errors import (
    DATABASE_RETRY_AFTER,
    ApiError,
    error_body,
    error_response,
)
from system.app import create_app
from system.bgg.errors import (
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggTimeout,
    BggUnavailable,
    GameNotFound,
)
from system.db.errors import CommitFailed
from system.observability.alerts import RequestWindow
from system.observability.metrics import MetricsMiddleware
from system.observability.sentry import close_sentry, init_sentry
from tests.conftest import make_settings
from tests.observability.test_sentry import CapturingTransport


def _raising(exc: BaseException) -> Callable[[], Any]:
    async def route() -> None:
        raise exc

    return route


def _app(tmp_path: Path, **routes: BaseException) -> FastAPI:
    app = create_app(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"))
    for name, exc in routes.items():
        app.add_api_route(f"/raise/{name}", _raising(exc))
    return app


async def _get(app: FastAPI, path: str, method: str = "GET") -> httpx.Response:
    # raise_app_exceptions=False: what a client gets even when the server also re-raises
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert list(body) == ["error"], body
    error: dict[str, Any] = body["error"]
    return error


# --- the shape ----------------------------------------------------------------------------


def test_error_body_defaults_the_code_from_the_status_and_keeps_extra_keys() -> None:
    assert error_body(404, "Game 12 not found") == {
        "status": 404,
        "code": "not_found",
        "message": "Game 12 not found",
    }
    assert error_body(418, "odd") == {"status": 418, "code": "error", "message": "odd"}
    assert error_body(503, "m", code="database_unavailable", retry_after=5) == {
        "status": 503,
        "code": "database_unavailable",
        "message": "m",
        "retry_after": 5,
    }


def test_error_response_carries_status_headers_and_shape() -> None:
    response = error_response(429, "slow down", headers={"Retry-After": "3"}, limit=10)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.body == (
        b'{"error":{"status":429,"code":"too_many_requests","message":"slow down","limit":10}}'
    )


@pytest.mark.parametrize(
    ("build", "status", "error", "headers"),
    [
        (
            lambda: ApiError(404, "Game 12 not found"),
            404,
            {"status": 404, "code": "not_found", "message": "Game 12 not found"},
            {},
        ),
        (lambda: ApiError(418, "odd"), 418, {"status": 418, "code": "error", "message": "odd"}, {}),
        (
            lambda: ApiError(409, "taken", code="duplicate", headers={"X-Hint": "h"}, bgg_id=3),
            409,
            {"status": 409, "code": "duplicate", "message": "taken", "bgg_id": 3},
            {"X-Hint": "h"},
        ),
    ],
    ids=["known-status", "unknown-status", "code-headers-extra"],
)
async def test_an_api_error_is_answered_in_the_shared_shape_with_its_code(
    tmp_path: Path,
    build: Callable[[], ApiError],
    status: int,
    error: dict[str, Any],
    headers: dict[str, str],
) -> None:
    # Built in the test, not at collection: mutmut collects once, then runs each mutant.
    response = await _get(_app(tmp_path, it=build()), "/raise/it")
    assert response.status_code == status
    assert _error(response) == error
    for name, value in headers.items():
        assert response.headers[name] == value


# --- BGG errors ---------------------------------------------------------------------------


def _unavailable(retry_after: float) -> BggUnavailable:
    exc = BggUnavailable("BGG breaker open", breaker="bgg", state="open", retry_after=retry_after)
    exc.upstream_attempts = 2
    return exc


@pytest.mark.parametrize(
    ("exc", "status", "error", "retry_after"),
    [
        (
            GameNotFound("Game 7 not found on BGG", bgg_id=7),
            404,
            {"status": 404, "code": "game_not_found", "message": "Game 7 not found on BGG"},
            None,
        ),
        (
            BggTimeout("BGG did not answer in time", bgg_id=8, retry_after=None),
            504,
            {"status": 504, "code": "bgg_timeout", "message": "BGG did not answer in time"},
            None,
        ),
        (
            BggRateLimited("BGG asked us to wait", bgg_id=9, retry_after=2.1),
            502,
            {"status": 502, "code": "bgg_rate_limited", "message": "BGG asked us to wait"},
            "3",
        ),
        (
            BggRateLimited("BGG asked us to wait", retry_after=0.0),
            502,
            {"status": 502, "code": "bgg_rate_limited", "message": "BGG asked us to wait"},
            "1",
        ),
        (
            BggBadResponse("BGG sent HTML"),
            502,
            {"status": 502, "code": "bgg_bad_response", "message": "BGG sent HTML"},
            None,
        ),
    ],
    ids=["not-found", "timeout", "rate-limited", "retry-after-floor", "bad-response"],
)
async def test_a_bgg_error_names_its_kind_and_when_to_retry(
    tmp_path: Path, exc: BggError, status: int, error: dict[str, Any], retry_after: str | None
) -> None:
    response = await _get(_app(tmp_path, it=exc), "/raise/it")
    assert response.status_code == status
    expected = dict(error)
    if exc.bgg_id is not None:
        expected["bgg_id"] = exc.bgg_id
    assert _error(response) == expected
    assert response.headers.get("Retry-After") == retry_after


@pytest.mark.parametrize(("retry_after", "header"), [(0.2, "1"), (29.01, "30"), (30.0, "30")])
async def test_an_open_breaker_says_which_breaker_its_state_and_when_to_retry(
    tmp_path: Path, retry_after: float, header: str
) -> None:
    response = await _get(_app(tmp_path, it=_unavailable(retry_after)), "/raise/it")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == header
    assert _error(response) == {
        "status": 503,
        "code": "bgg_unavailable",
        "message": "BGG breaker open",
        "breaker": "bgg",
        "state": "open",
        "retry_after": retry_after,
        "upstream_attempts": 2,
    }


async def test_an_open_breakers_503s_do_not_count_as_errors_for_the_error_rate_alert(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path, rejected=_unavailable(5.0), broken=BggBadResponse("HTML"))
    for _ in range(3):
        assert (await _get(app, "/raise/rejected")).status_code == 503
    assert await _error_rate(app) == 0.0
    assert (await _get(app, "/raise/broken")).status_code == 502
    assert await _error_rate(app) == pytest.approx(0.25)


async def _error_rate(app: FastAPI) -> float:
    # The error-rate alert reads the window the metrics middleware fills.
    # Starlette types Middleware.cls with a ParamSpec bound to nothing: mypy finds no class
    # that could be it.
    (window,) = [
        m.kwargs["window"]
        for m in app.user_middleware
        if m.cls is MetricsMiddleware  # type: ignore[comparison-overlap]
    ]
    assert isinstance(window, RequestWindow)
    requests, errors = window.totals()
    return float(errors / requests)


# --- Starlette's and FastAPI's own errors -------------------------------------------------


async def test_an_unknown_route_is_a_404_named_as_such(tmp_path: Path) -> None:
    response = await _get(_app(tmp_path), "/no/such/route")
    assert response.status_code == 404
    assert _error(response) == {"status": 404, "code": "not_found", "message": "No such route"}


@pytest.mark.parametrize(
    ("exc", "error", "headers"),
    [
        (
            HTTPException(404, "Not Found"),
            {"status": 404, "code": "not_found", "message": "No such route"},
            {},
        ),
        (
            HTTPException(404, "Game 3 not found"),
            {"status": 404, "code": "not_found", "message": "Game 3 not found"},
            {},
        ),
        (
            HTTPException(403, detail={"why": "structured"}),
            {"status": 403, "code": "forbidden", "message": "forbidden"},
            {},
        ),
        (
            HTTPException(418, detail=["structured"]),
            {"status": 418, "code": "error", "message": "error"},
            {},
        ),
        (
            HTTPException(401, "Missing token", headers={"WWW-Authenticate": "Bearer"}),
            {"status": 401, "code": "unauthorized", "message": "Missing token"},
            {"WWW-Authenticate": "Bearer"},
        ),
    ],
    ids=["not-found-default", "not-found-own", "structured-detail", "unknown-status", "headers"],
)
async def test_an_http_exception_keeps_its_status_message_and_headers(
    tmp_path: Path, exc: HTTPException, error: dict[str, Any], headers: dict[str, str]
) -> None:
    response = await _get(_app(tmp_path, it=exc), "/raise/it")
    assert response.status_code == error["status"]
    assert _error(response) == error
    for name, value in headers.items():
        assert response.headers[name] == value


async def test_a_wrong_method_is_a_405_that_says_which_methods_are_allowed(
    tmp_path: Path,
) -> None:
    response = await _get(_app(tmp_path), "/health", method="DELETE")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_validation_errors_name_each_field_where_it_was_sent(tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def route(limit: int, item: dict[str, int]) -> None:
        raise AssertionError("not reached")

    app.add_api_route("/validated", route, methods=["POST"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/validated?limit=many", json={"count": "x"})
        missing_body = await client.post("/validated?limit=1")
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "validation_error"
    assert [(f["field"], f["location"]) for f in error["fields"]] == [
        ("limit", "query"),
        ("count", "body"),
    ]
    messages = [f["message"] for f in error["fields"]]
    assert all(messages), messages
    assert error["message"] == f"Invalid request: limit: {messages[0]}; count: {messages[1]}"
    # A missing body has no field below the location: the location names it.
    (field,) = _error(missing_body)["fields"]
    assert (field["field"], field["location"]) == ("body", "body")


# --- storage errors -----------------------------------------------------------------------


MESSAGES = {
    "database_unavailable": "Database unavailable, try again shortly",
    "conflict": "The change conflicted with another one; nothing was saved",
    "commit_failed": "The change could not be saved; nothing was changed, try again shortly",
}


def _refused() -> OSError:
    return ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)")


@pytest.mark.parametrize(
    ("cause", "status", "code", "retry_after", "reason"),
    [
        (
            _refused(),
            503,
            "database_unavailable",
            DATABASE_RETRY_AFTER,
            "no connection (ConnectionRefusedError)",
        ),
        (
            IntegrityError("INSERT", {}, Exception("duplicate key")),
            409,
            "conflict",
            None,
            "IntegrityError",
        ),
        (
            OperationalError("COMMIT", {}, Exception("deferred constraint")),
            503,
            "commit_failed",
            DATABASE_RETRY_AFTER,
            "OperationalError",
        ),
    ],
    ids=["outage", "conflict", "refused-commit"],
)
async def test_a_failed_commit_is_never_a_success(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    cause: Exception,
    status: int,
    code: str,
    retry_after: str | None,
    reason: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="system.api.errors"):
        response = await _get(_app(tmp_path, it=CommitFailed(cause)), "/raise/it")
    assert response.status_code == status
    error = _error(response)
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"] == MESSAGES[code]
    assert response.headers.get("Retry-After") == retry_after
    (line,) = [r.getMessage() for r in caplog.records if r.name == "system.api.errors"]
    # The reason without driver text (which can name hosts and roles).
    assert line == f"commit failed: CommitFailed: {reason}"


async def test_a_database_outage_is_a_503_with_one_log_line_naming_no_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="system.api.errors"):
        response = await _get(_app(tmp_path, down=_refused()), "/raise/down")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == DATABASE_RETRY_AFTER
    assert _error(response) == {
        "status": 503,
        "code": "database_unavailable",
        "message": "Database unavailable, try again shortly",
    }
    (record,) = [r for r in caplog.records if r.name == "system.api.errors"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == (
        "database unavailable on GET /raise/down: ConnectionRefusedError: "
        "no connection (ConnectionRefusedError)"
    )
    assert "10.0.0.5" not in caplog.text


async def test_a_bad_query_is_a_bug_a_500_with_its_stack_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bug = ProgrammingError("SELEC 1", {}, Exception('syntax error at or near "SELEC"'))
    with caplog.at_level(logging.WARNING, logger="system.api.errors"):
        response = await _get(_app(tmp_path, bug=bug), "/raise/bug")
    assert response.status_code == 500
    assert _error(response) == {
        "status": 500,
        "code": "internal_error",
        "message": "Internal server error",
    }
    (record,) = [r for r in caplog.records if r.name == "system.api.errors"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "unhandled error on GET /raise/bug"
    assert record.exc_info is not None and record.exc_info[1] is bug


# --- crashes ------------------------------------------------------------------------------


async def test_a_crash_in_a_route_is_a_500_in_the_shared_shape_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crash = RuntimeError("boom")
    app = _app(tmp_path, crash=crash)
    transport = httpx.ASGITransport(app=app)  # raises if the app re-raised after answering
    with caplog.at_level(logging.WARNING):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/raise/crash")
    assert response.status_code == 500
    assert _error(response) == {
        "status": 500,
        "code": "internal_error",
        "message": "Internal server error",
    }
    records = [r for r in caplog.records if r.exc_info is not None]
    assert [(r.name, r.getMessage()) for r in records] == [
        ("system.api.errors", "unhandled error on GET /raise/crash")
    ]


@pytest.mark.parametrize("first", [[b"first chunk"], []], ids=["mid-body", "before-the-body"])
async def test_a_crash_after_the_answer_started_is_left_to_the_server(
    tmp_path: Path, first: list[bytes]
) -> None:
    app = _app(tmp_path)

    async def chunks() -> AsyncIterator[bytes]:
        # StreamingResponse sends the status and headers before it asks for a chunk: with no
        # chunk first, the answer started with its headers alone.
        for chunk in first:
            yield chunk
        raise RuntimeError("boom mid-body")

    async def route() -> StreamingResponse:
        return StreamingResponse(chunks())

    app.add_api_route("/stream", route)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        # Too late for a 500: a second answer would corrupt the first one's body.
        with pytest.raises(RuntimeError, match="boom mid-body"):
            await client.get("/stream")


class _FailingMiddleware:
    """Stands for a middleware outside UnexpectedErrors that fails before the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise RuntimeError("middleware bug")
        await self.app(scope, receive, send)


async def test_a_crash_outside_the_routes_still_answers_the_shared_shape(tmp_path: Path) -> None:
    app = _app(tmp_path)
    app.add_middleware(_FailingMiddleware)
    response = await _get(app, "/health/live")
    assert response.status_code == 500
    assert _error(response) == {
        "status": 500,
        "code": "internal_error",
        "message": "Internal server error",
    }


# --- Sentry -------------------------------------------------------------------------------


@pytest.fixture
def sentry_events(tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    """Sentry on, sending to a list."""
    transport = CapturingTransport()
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    assert init_sentry(settings, breaker_state=lambda: "closed", transport=transport)
    try:
        yield transport.events
    finally:
        close_sentry()


def _exception_types(events: list[dict[str, Any]]) -> list[str]:
    sentry_sdk.flush()
    return [e["exception"]["values"][-1]["type"] for e in events]


async def test_sentry_gets_each_upstream_error_but_one_outage_answer_a_minute(
    tmp_path: Path, sentry_events: list[dict[str, Any]]
) -> None:
    app = _app(
        tmp_path,
        broken=BggBadResponse("HTML"),
        rejected=_unavailable(5.0),
        missing=GameNotFound("no such game", bgg_id=1),
        down=_refused(),
    )
    for _ in range(2):
        for path in ("broken", "rejected", "missing", "down"):
            await _get(app, f"/raise/{path}")
    types = _exception_types(sentry_events)
    assert sorted(types) == sorted(
        ["BggBadResponse", "BggBadResponse", "BggUnavailable", "ConnectionRefusedError"]
    )
    fingerprints = {
        e["exception"]["values"][-1]["type"]: e.get("fingerprint") for e in sentry_events
    }
    assert fingerprints["BggUnavailable"] == ["bgg-unavailable"]
    assert fingerprints["ConnectionRefusedError"] == ["database-unavailable"]
    assert fingerprints["BggBadResponse"] in (None, ["{{ default }}"])


async def test_health_checks_never_use_up_the_minutes_report(
    tmp_path: Path, sentry_events: list[dict[str, Any]]
) -> None:
    app = _app(tmp_path)
    app.add_api_route("/health/raise", _raising(_unavailable(5.0)))
    app.add_api_route("/raise/rejected", _raising(_unavailable(5.0)))
    assert (await _get(app, "/health/raise")).status_code == 503
    assert _exception_types(sentry_events) == []
    assert (await _get(app, "/raise/rejected")).status_code == 503
    assert _exception_types(sentry_events) == ["BggUnavailable"]


async def test_a_crash_is_one_sentry_event(
    tmp_path: Path, sentry_events: list[dict[str, Any]]
) -> None:
    app = _app(tmp_path, crash=RuntimeError("boom"))
    assert (await _get(app, "/raise/crash")).status_code == 500
    assert _exception_types(sentry_events) == ["RuntimeError"]


async def test_a_nested_field_is_named_by_its_path(tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def route(ids: Annotated[list[int], Query()]) -> None:
        raise AssertionError("not reached")

    app.add_api_route("/listed", route)
    response = await _get(app, "/listed?ids=1&ids=two")
    assert response.status_code == 422
    (field,) = _error(response)["fields"]
    assert (field["field"], field["location"]) == ("ids.1", "query")


def test_an_api_error_reads_as_its_message_in_logs_and_tracebacks() -> None:
    assert str(ApiError(404, "Game 12 not found")) == "Game 12 not found"
