"""The real sentry-sdk with a capturing transport: what is reported, and what never is."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from chaos.fakes import FaultRule
from system.api.deps import get_database
from system.app import create_app
from system.container import Overrides
from system.db.database import Database
from system.observability.sentry import EventFilter, traces_sampler
from tests.conftest import ADMIN_TOKEN, NoSleep, make_settings
from tests.fakes import Upstreams


class CapturingTransport(Transport):
    """Keeps every error event instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                self.events.append(item.payload.json)


class Reporting:
    def __init__(self, client: httpx.AsyncClient, transport: CapturingTransport) -> None:
        self.client = client
        self.transport = transport

    async def post(self, path: str, token: str = ADMIN_TOKEN) -> httpx.Response:
        return await self.client.post(path, headers={"Authorization": f"Bearer {token}"})


async def _app(
    settings: Any, upstreams: Upstreams, transport: CapturingTransport, **overrides: Any
) -> AsyncIterator[Reporting]:
    values = {
        "database_url": settings.database_url,
        "bgg_base_url": upstreams.bgg_base_url,
        "environment": "staging",
        "git_commit_sha": "abc123",
        "bgg_api_token": "bgg-secret-token",
        "bgg_retry_attempts": 1,
        "thumbnail_dir": settings.thumbnail_dir,
        "spool_path": settings.spool_path,
    }
    values.update(overrides)
    app = create_app(
        make_settings(**values), overrides=Overrides(sleep=NoSleep(), sentry_transport=transport)
    )
    async with app.router.lifespan_context(app):
        asgi = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=asgi, base_url="http://testserver") as client:
            yield Reporting(client, transport)
            sentry_sdk.flush()


@pytest.fixture
async def reporting(settings: Any, upstreams: Upstreams) -> AsyncIterator[Reporting]:
    async for built in _app(settings, upstreams, CapturingTransport()):
        yield built


def _tags(event: dict[str, Any]) -> dict[str, str]:
    tags = event.get("tags") or {}
    return dict(tags)  # a dict, or [key, value] pairs


async def test_an_admin_api_error_is_reported_with_tags_and_no_secrets(
    reporting: Reporting, upstreams: Upstreams
) -> None:
    upstreams.bgg_app.engine.set_rules([FaultRule(status=500, path="/thing")])
    response = await reporting.post("/api/admin/games/import/13")
    assert response.status_code == 502
    sentry_sdk.flush()
    (event,) = reporting.transport.events
    tags = _tags(event)
    assert tags["user_type"] == "admin"
    assert tags["endpoint_type"] == "api"
    assert tags["bgg_breaker"] == "closed"
    assert event["release"] == "abc123"
    assert event["environment"] == "staging"
    text = json.dumps(event)
    assert ADMIN_TOKEN not in text
    assert "bgg-secret-token" not in text
    headers = {k.lower(): v for k, v in (event.get("request") or {}).get("headers", {}).items()}
    assert headers.get("authorization") in (None, "[Filtered]")
    assert event["exception"]["values"][-1]["type"] == "BggTransientError"


async def test_an_outage_is_one_issue_not_thousands(
    reporting: Reporting, upstreams: Upstreams
) -> None:
    upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
    for _ in range(12):
        await reporting.post("/api/admin/games/import/13")
    sentry_sdk.flush()
    kinds = [e["exception"]["values"][-1]["type"] for e in reporting.transport.events]
    assert kinds.count("BggTransientError") == 5  # the five failures that opened the breaker
    # Seven rejections, one event: rejections are reported at most once a minute.
    (rejected,) = [
        e
        for e, kind in zip(reporting.transport.events, kinds, strict=False)
        if kind == "BggUnavailable"
    ]
    assert rejected["fingerprint"] == ["bgg-unavailable"]
    assert _tags(rejected)["bgg_breaker"] == "open"


async def test_development_sends_nothing(settings: Any, upstreams: Upstreams) -> None:
    transport = CapturingTransport()
    async for app in _app(settings, upstreams, transport, environment="development"):
        upstreams.bgg_app.engine.set_rules([FaultRule(status=500, path="/thing")])
        assert (await app.post("/api/admin/games/import/13")).status_code == 502
    assert transport.events == []


def test_health_events_are_dropped_and_secrets_scrubbed() -> None:
    settings = make_settings(admin_tokens="super-secret-admin", bgg_api_token="bgg-tok-123")
    before_send = EventFilter(settings)
    health = {"request": {"url": "http://api/health", "headers": {}}}
    assert before_send(health, {}) is None
    assert before_send({"request": {"url": "http://api/health/ready"}}, {}) is None
    event = {
        "request": {
            "url": "http://api/games",
            "headers": {"Authorization": "Bearer super-secret-admin", "Cookie": "s=1", "X": "y"},
            "cookies": {"s": "1"},
            "query_string": "token=abc&page=2",
        },
        "message": "failed with bgg-tok-123 and super-secret-admin",
        "breadcrumbs": {"values": [{"message": "super-secret-admin"}]},
    }
    out = before_send(event, {})
    assert out is not None
    assert out["tags"] == {"user_type": "public", "endpoint_type": "static"}
    assert out["request"]["headers"] == {
        "Authorization": "[Filtered]", "Cookie": "[Filtered]", "X": "y",
    }  # fmt: skip
    assert "cookies" not in out["request"]
    assert "abc" not in out["request"]["query_string"]
    assert "super-secret-admin" not in json.dumps(out) and "bgg-tok-123" not in json.dumps(out)


def test_traces_sampler_skips_health_checks() -> None:
    assert traces_sampler({"asgi_scope": {"path": "/health"}}) == 0
    assert traces_sampler({"asgi_scope": {"path": "/health/ready"}}) == 0
    assert traces_sampler({"asgi_scope": {"path": "/metrics"}}) == 0
    assert traces_sampler({"asgi_scope": {"path": "/api/public/games"}}) == 0.1


async def test_the_spec_options(reporting: Reporting) -> None:
    options = sentry_sdk.get_client().options
    assert options["environment"] == "staging"
    assert options["release"] == "abc123"
    assert options["traces_sample_rate"] == 0.1
    assert options["profiles_sample_rate"] == 0.1
    assert options["attach_stacktrace"] is True
    assert options["max_breadcrumbs"] == 50
    integrations = {type(i).__name__ for i in sentry_sdk.get_client().integrations.values()}
    assert {"FastApiIntegration", "SqlalchemyIntegration"} <= integrations


async def test_export_without_a_dsn_writes_api_shaped_events(
    settings: Any, upstreams: Upstreams, tmp_path: Path
) -> None:
    export = tmp_path / "sentry.jsonl"
    transport = CapturingTransport()
    async for app in _app(settings, upstreams, transport, sentry_export_path=export):
        upstreams.bgg_app.engine.set_rules([FaultRule(status=500, path="/thing")])
        await app.post("/api/admin/games/import/13")
    (line,) = export.read_text().splitlines()
    event = json.loads(line)
    assert {
        "eventID", "dateCreated", "title", "message", "culprit", "platform", "tags",
        "release", "entries", "fingerprints", "contexts",
    } <= set(event)  # fmt: skip
    assert event["dateCreated"].endswith("Z")
    assert event["title"].startswith("BggTransientError: ")
    tags = {t["key"]: t["value"] for t in event["tags"]}
    assert tags["environment"] == "staging" and tags["user_type"] == "admin"
    (exception,) = [e for e in event["entries"] if e["type"] == "exception"]
    frames = exception["data"]["values"][-1]["stacktrace"]["frames"]
    assert frames and {"absPath", "lineNo", "function", "inApp", "context"} <= set(frames[-1])
    assert ADMIN_TOKEN not in line


FAILURES = "/api/admin/monitoring/background-failures"


@pytest.mark.parametrize(
    "error",
    [RuntimeError("readiness crashed"), ConnectionRefusedError("database refused")],
    ids=["crash", "database-down"],
)
async def test_a_failing_health_check_sends_no_event_through_the_real_sdk(
    settings: Any, error: Exception, admin_headers: dict[str, str]
) -> None:
    """The app as deployed (a DSN, the real SDK and its integrations): a failing /health
    request is dropped by before_send, the same failure on an API route is reported.

    Both kinds of failure go through a different path: a crash is captured by the SDK's
    Starlette integration, the database outage by the app's own `capture_exception`.
    """
    transport = CapturingTransport()
    app = create_app(
        make_settings(
            database_url=settings.database_url,
            thumbnail_dir=settings.thumbnail_dir,
            spool_path=settings.spool_path,
            environment="production",
            sentry_dsn="https://publickey@o0.ingest.sentry.io/1",
        ),
        overrides=Overrides(sleep=NoSleep(), sentry_transport=transport),
    )

    def broken_database() -> Database:
        raise error

    app.dependency_overrides[get_database] = broken_database
    async with app.router.lifespan_context(app):
        assert sentry_sdk.get_client().is_active()
        # Starlette re-raises a crash after answering 500; the client must not re-raise it.
        asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=asgi, base_url="http://testserver") as client:
            health = await client.get("/health/ready")
            sentry_sdk.flush()
            assert health.status_code in (500, 503)
            assert transport.events == []

            # A route that reaches the database through the app's dependencies (the public
            # reads check the catalogue version on their own connection).
            failures = await client.get(FAILURES, headers=admin_headers)
            sentry_sdk.flush()
            assert failures.status_code == health.status_code
    (event,) = transport.events
    assert event["exception"]["values"][-1]["type"] == type(error).__name__
    assert event["request"]["url"].endswith(FAILURES)
    assert _tags(event)["endpoint_type"] == "api"
