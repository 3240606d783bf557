"""Liveness never touches the database; readiness does, and says why it fails."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from system.app import create_app
from system.config import Settings
from tests.conftest import make_settings, migrate_database


@asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client to an app built from `settings`, its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


async def test_unreachable_database_keeps_liveness_and_fails_readiness(tmp_path: Path) -> None:
    # Nothing listens on port 9 (discard): every connection is refused.
    settings = make_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/none",
        database_connect_timeout=0.5,
    )
    async with running_client(settings) as client:
        assert (await client.get("/health")).status_code == 200
        response = await client.get("/health/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["reason"].startswith("database unreachable")
        assert body["error"]["code"] == "database_unavailable"
        assert body["error"]["status"] == 503
        assert response.headers["Retry-After"] == "5"
        # The public API answers in the shared error shape, not a traceback.
        games = await client.get("/api/public/games")
        assert games.status_code == 503
        assert games.headers["Retry-After"] == "5"
        assert games.json()["error"]["code"] == "database_unavailable"


async def test_unusable_sqlite_folder_keeps_liveness_and_fails_readiness(tmp_path: Path) -> None:
    # A file where the folder should be: mkdir fails even for root, as a read-only mount would.
    (tmp_path / "not-a-folder").write_text("")
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'not-a-folder' / 'var' / 'x.db'}"
    )
    async with running_client(settings) as client:
        assert (await client.get("/health")).status_code == 200
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"].startswith("database unreachable")


async def test_readiness_reports_an_unmigrated_schema(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", auto_migrate=False
    )
    async with running_client(settings) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert "schema" in response.json()["reason"]


async def test_readiness_fails_while_another_process_holds_the_sqlite_write_lock(
    tmp_path: Path,
) -> None:
    """SELECT 1 would still answer; every write would fail. Readiness must say so."""
    import sqlite3

    path = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{path}"
    # Migrated beforehand: under load the app's own migration could outlast the short busy
    # timeout this test needs, and readiness would rightly say so before the lock is taken.
    await migrate_database(url)
    settings = make_settings(database_url=url, database_connect_timeout=0.2)
    async with running_client(settings) as client:
        assert (await client.get("/health/ready")).status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            response = await client.get("/health/ready")
            assert response.status_code == 503
            assert "locked" in response.json()["reason"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await client.get("/health/ready")).status_code == 200


async def test_reads_before_the_migrations_answer_503_not_500(
    empty_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing table while the schema is not at head (migrations pending: AUTO_MIGRATE off,
    or retrying while the database was down at start) is the known state readiness reports,
    and a retry will do; once the schema was seen at head, a missing table is a bug."""
    settings = make_settings(database_url=empty_database_url, auto_migrate=False)
    async with running_client(settings) as client:
        for path in ("/api/public/games", "/api/public/games/1"):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="system.api.errors"):
                response = await client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"] == {
                "status": 503,
                "code": "database_unavailable",
                "message": "Database not ready (its schema is being migrated), try again shortly",
            }
            # one line naming the request and the cause in the driver-free words of describe()
            [line] = [r.getMessage() for r in caplog.records if r.name == "system.api.errors"]
            assert re.fullmatch(
                f"database schema not at head on GET {re.escape(path)}: "
                "(the server answered SQLSTATE 42P01|SQLite error 1)",
                line,
            ), line
    await migrate_database(empty_database_url)
    app = create_app(settings.model_copy(update={"read_cache_entries": 0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health/ready")).status_code == 200  # seen at head
            assert (await client.get("/api/public/games")).status_code == 200
            async with app.state.services.database.engine.begin() as conn:
                await conn.exec_driver_sql("ALTER TABLE boardgames RENAME TO boardgames_moved")
            assert (await client.get("/api/public/games")).status_code == 500
