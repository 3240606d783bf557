"""No configured secret leaves in a Sentry event or a log line (issue 12, item 7).

Whole events from the service (the real SDK, a capturing transport, a real BGG failure
through the app) with every secret setting filled in; and the scrubber on a real stored
Sentry event from ../shared/fixtures with those secrets planted where frames keep locals.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from sqlalchemy.engine import make_url

from chaos.fakes import FaultRule
from chaos.service import free_port
from system.app import create_app
from system.config import Settings
from system.container import Overrides
from system.observability.sentry import EventFilter
from tests.conftest import ADMIN_TOKEN, FIXTURES, NoSleep, make_settings
from tests.fakes import Upstreams
from tests.observability.test_sentry import CapturingTransport

DATABASE_PASSWORD = "db-pass-9f3kQ"
REDIS_PASSWORD = "redis-pass-77xW"
WEBHOOK_SECRET = "hook-secret-Zq8vT"
BGG_TOKEN = "bgg-token-Lm4p"
DSN_KEY = "dsnkey0123456789abcdef"
SECRETS = (ADMIN_TOKEN, DATABASE_PASSWORD, REDIS_PASSWORD, WEBHOOK_SECRET, BGG_TOKEN, DSN_KEY)


def _secret_settings(database_url: str, tmp_path: Path, **values: Any) -> Settings:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":  # the test server trusts any password
        database_url = url.set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)
    return make_settings(
        database_url=database_url,
        redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",  # nothing listens
        alert_webhook_url=f"http://127.0.0.1:{free_port()}/services/T01/B02/{WEBHOOK_SECRET}",
        bgg_api_token=BGG_TOKEN,
        sentry_dsn=f"https://{DSN_KEY}@o0.ingest.sentry.io/1",
        environment="production",
        bgg_retry_attempts=1,
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
        **values,
    )


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.mark.postgres
async def test_events_after_a_bgg_failure_carry_no_secret_setting(
    postgres_session_url: str,
    upstreams: Upstreams,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _secret_settings(postgres_session_url, tmp_path, bgg_base_url=upstreams.bgg_base_url)
    transport = CapturingTransport()
    app = create_app(settings, overrides=Overrides(sleep=NoSleep(), sentry_transport=transport))
    upstreams.bgg_app.engine.set_rules([FaultRule(status=500, path="/thing")])
    async with app.router.lifespan_context(app):
        asgi = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=asgi, base_url="http://t") as client:
            for _ in range(3):
                response = await client.post(
                    "/api/admin/games/import/13",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                assert response.status_code == 502
            ready = await client.get("/health/ready")
        sentry_sdk.flush()
    assert len(transport.events) == 3
    for event in transport.events:
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        # The events do carry frame locals (what used to leak), only without the secrets.
        assert any("services" in (frame.get("vars") or {}) for frame in frames)
        assert _leaks(json.dumps(event)) == []
    assert _leaks(ready.text) == []
    assert _leaks("\n".join(record.getMessage() for record in caplog.records)) == []
    assert _leaks("\n".join(str(record.args) for record in caplog.records)) == []


def test_the_settings_never_render_a_secret(tmp_path: Path) -> None:
    settings = _secret_settings("postgresql+asyncpg://u@127.0.0.1:5432/db", tmp_path)
    for rendered in (repr(settings), str(settings), str(settings.model_dump())):
        assert _leaks(rendered) == []


def test_the_scrubber_removes_every_secret_setting_from_a_real_stored_event(
    tmp_path: Path,
) -> None:
    settings = _secret_settings("postgresql+asyncpg://u@127.0.0.1:5432/db", tmp_path)
    event = json.loads((FIXTURES / "sentry" / "python_zero_division.event_json.json").read_text())
    planted = copy.deepcopy(event)
    frame = planted["exception"]["values"][0]["stacktrace"]["frames"][-1]
    frame["vars"].update(
        database_url=f"postgresql+asyncpg://u:{DATABASE_PASSWORD}@db/x",
        redis=f"Redis<ConnectionPool<Connection<password={REDIS_PASSWORD}>>>",
        webhook=f"https://hooks.example/services/T01/B02/{WEBHOOK_SECRET}",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}", "x": BGG_TOKEN},
        dsn=f"https://{DSN_KEY}@o0.ingest.sentry.io/1",
    )
    planted["message"] = f"failed talking to {DATABASE_PASSWORD} and {WEBHOOK_SECRET}"
    assert len(_leaks(json.dumps(planted))) == len(SECRETS)
    scrubbed = EventFilter(settings)(planted, {})
    assert scrubbed is not None
    assert _leaks(json.dumps(scrubbed)) == []
    # Nothing else was touched: the rest of the stored event is as it was.
    assert scrubbed["exception"]["values"][0]["type"] == event["exception"]["values"][0]["type"]
    assert scrubbed["request"]["url"] == event["request"]["url"]
