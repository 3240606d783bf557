"""A real database outage through the real SDK: no password in any form leaves, and the 503s
are reported at most once a minute (issue 12, item 7).

PostgreSQL refuses the connections of a throw-away database (`ALLOW_CONNECTIONS false`) whose
own role has a password with `@`, `/` and `%` in it, so `DATABASE_URL` holds it
percent-encoded while asyncpg's connect frames hold it decoded (in `kwargs`, and in tuples of
connection parameters where no key names it).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
import sentry_sdk
from sqlalchemy.engine import make_url

from chaos.service import free_port
from system.app import create_app
from system.config import Settings
from system.container import Overrides
from system.observability.sentry import FILTERED, EventFilter, RateLimiter
from tests.api.served import asyncpg_dsn
from tests.conftest import TEST_DATABASE_URL, NoSleep, make_settings
from tests.observability.test_sentry import CapturingTransport

DATABASE_PASSWORD = "Pw@rd/SECRET%zz"
REDIS_PASSWORD = "R3d@is/pw%x"
#: Every spelling of the two passwords that must never leave.
FORMS = (
    DATABASE_PASSWORD,
    quote(DATABASE_PASSWORD, safe=""),
    REDIS_PASSWORD,
    quote(REDIS_PASSWORD, safe=""),
)


def _leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


@dataclass(frozen=True)
class Refusing:
    """A migrated database of its own role that can be made to refuse connections."""

    url: str
    name: str
    admin_dsn: str

    async def refuse(self) -> None:
        """ALLOW_CONNECTIONS false, and the service's open connections terminated."""
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                self.name,
            )
        finally:
            await admin.close()


@pytest.fixture
async def refusing() -> AsyncIterator[Refusing]:
    """A throw-away role (the test's password) owning a throw-away database."""
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    server = make_url(TEST_DATABASE_URL)
    admin_dsn = asyncpg_dsn(server.set(database="postgres").render_as_string(False))
    suffix = uuid.uuid4().hex[:8]
    role, name = f"bggrel_secret_{suffix}", f"bggrel_secret_{suffix}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        password = DATABASE_PASSWORD.replace("'", "''")
        await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
        # As an operator writes it: the password percent-encoded in the URL.
        url = f"postgresql+asyncpg://{role}:{quote(DATABASE_PASSWORD, safe='')}@"
        url += f"{server.host or '127.0.0.1'}:{server.port or 5432}/{name}"
        assert make_url(url).password == DATABASE_PASSWORD
        yield Refusing(url, name, admin_dsn)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


def _settings(url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url=url,
        database_connect_timeout=2,
        redis_url=f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{free_port()}/0",
        environment="production",
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
    )


class Clock:
    """The rate limiter's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _outage_events(
    refusing: Refusing, tmp_path: Path, limiter: RateLimiter, reads: int, clock: Clock
) -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    transport = CapturingTransport()
    app = create_app(
        _settings(refusing.url, tmp_path),
        overrides=Overrides(sleep=NoSleep(), sentry_transport=transport),
    )
    app.state.rejection_reports = limiter
    answers = []
    async with app.router.lifespan_context(app):
        asgi = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=asgi, base_url="http://t") as client:
            assert (await client.get("/api/public/games")).status_code == 200
            await refusing.refuse()
            for turn in range(reads):
                path = "/api/public/games" if turn % 2 else "/api/public/games/1"
                answers.append(await client.get(path))
            # Past the interval, the next outage answer is reported again.
            clock.now += limiter.interval
            answers.append(await client.get("/api/public/games"))
        sentry_sdk.flush()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "database_unavailable"
    return transport.events, answers


def _frames(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for value in event["exception"]["values"]:
        yield from (value.get("stacktrace") or {}).get("frames") or []


@pytest.mark.postgres
async def test_an_outage_event_carries_no_form_of_the_passwords(
    refusing: Refusing, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    # Every 503 reported (no interval), so each kind of failure frame is looked at.
    events, answers = await _outage_events(refusing, tmp_path, RateLimiter(0.0, clock), 6, clock)
    assert len(events) == len(answers)
    for event in events:
        assert _leaks(json.dumps(event)) == []
    assert _leaks(caplog.text) == []
    assert _leaks("\n".join(record.getMessage() for record in caplog.records)) == []
    connect_frames = [
        frame
        for event in events
        for frame in _frames(event)
        if "asyncpg" in str(frame.get("module")) and "params" in (frame.get("vars") or {})
    ]
    # The frames that used to carry the password are there, with their locals, without it.
    assert connect_frames, "no event holds asyncpg's connect frames"
    assert any(FILTERED in json.dumps(frame["vars"]) for frame in connect_frames)


@pytest.mark.postgres
async def test_outage_503s_are_reported_at_most_once_per_interval(
    refusing: Refusing, tmp_path: Path
) -> None:
    clock = Clock()
    events, answers = await _outage_events(refusing, tmp_path, RateLimiter(60.0, clock), 10, clock)
    # Ten 503s within the minute: one event; one more after it: a second.
    assert len(answers) == 11
    assert len(events) == 2
    assert all(event["fingerprint"] == ["database-unavailable"] for event in events)


def test_kinds_of_report_do_not_hold_each_other_back() -> None:
    clock = Clock()
    limiter = RateLimiter(60.0, clock)
    assert limiter.allow("bgg-unavailable")
    assert limiter.allow("database-unavailable")
    assert not limiter.allow("bgg-unavailable")
    assert not limiter.allow("database-unavailable")
    clock.now = 60.0
    assert limiter.allow("database-unavailable")


def test_the_scrubber_removes_password_like_keys_at_any_depth(tmp_path: Path) -> None:
    escaped = "back\\slash-Secret"  # not configured anywhere: only its key gives it away
    event: dict[str, Any] = {
        "extra": {"config": {"db": {"password": escaped, "pwd": "x1y2z3", "port": 5432}}},
        "request": {"url": "http://t/api/x", "data": {"form": [{"api_key": "k-123456"}]}},
        "exception": {
            "values": [
                {
                    "stacktrace": {
                        "frames": [
                            {
                                "vars": {
                                    "kwargs": {"user": "'me'", "password": repr(escaped)},
                                    "sentry_dsn": "'https://k@o0.ingest/1'",
                                    "access_token": "'tok-abcdef'",
                                    "token_count": 3,
                                    "authors": "['Uwe']",
                                }
                            }
                        ]
                    }
                }
            ]
        },
    }
    scrubbed = EventFilter(_settings("sqlite+aiosqlite:///x.db", tmp_path))(event, {})
    assert scrubbed is not None
    text = json.dumps(scrubbed)
    for secret in ("back", "x1y2z3", "k-123456", "o0.ingest", "tok-abcdef"):
        assert secret not in text
    frame_vars = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]
    assert frame_vars["kwargs"] == {"user": "'me'", "password": FILTERED}
    assert frame_vars["token_count"] == 3 and frame_vars["authors"] == "['Uwe']"
    assert scrubbed["extra"]["config"]["db"]["port"] == 5432


def test_a_configured_password_is_scrubbed_in_every_form(tmp_path: Path) -> None:
    password = "Pw@rd/SE\\CRET%zz"  # a backslash: repr doubles it
    url = f"postgresql+asyncpg://u:{quote(password, safe='')}@127.0.0.1:5432/db"
    spellings = [password, quote(password, safe=""), repr(password)[1:-1]]
    event = {"message": " | ".join(spellings), "extra": {"params": spellings}}
    scrubbed = EventFilter(_settings(url, tmp_path))(event, {})
    assert scrubbed is not None
    assert "CRET" not in json.dumps(scrubbed)
    assert scrubbed["extra"]["params"] == [FILTERED] * 3
