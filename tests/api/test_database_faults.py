"""A database that refuses or drops connections is a 503 with Retry-After, never a 500, and
the service recovers by itself; a real bug stays a 500, and no 500 kills the connection
(issue 12, item 4)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from system.api.deps import SessionDep
from system.app import create_app
from system.config import Settings
from system.db.database import READ_ONLY_REASON, Database
from system.db.models import BackgroundTaskFailure, BoardGame
from tests.api.served import add_row, asyncpg_dsn, raw_request, read_response, served
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.waiting import eventually

postgres_only = pytest.mark.postgres
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _settings(url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url=url,
        database_connect_timeout=2,
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
    )


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"


@pytest.fixture
async def admin(own_postgres: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection outside the service, to the server's `postgres` database."""
    connection = await asyncpg.connect(
        asyncpg_dsn(
            make_url(own_postgres).set(database="postgres").render_as_string(hide_password=False)
        )
    )
    try:
        yield connection
    finally:
        await connection.close()


@postgres_only
async def test_terminated_backends_answer_503_then_the_service_recovers(
    own_postgres: str, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    name = make_url(own_postgres).database
    async with served(create_app(_settings(own_postgres, tmp_path))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/api/public/games")).status_code == 200
            # Hold the catalogue (and its version, which a read asks first) so the next read
            # is in flight when its backend is killed.
            locker = await asyncpg.connect(asyncpg_dsn(own_postgres))
            try:
                transaction = locker.transaction()
                await transaction.start()
                await locker.execute(
                    "LOCK TABLE catalogue_version, boardgames IN ACCESS EXCLUSIVE MODE"
                )
                read = asyncio.create_task(client.get("/api/public/games"))
                await eventually(
                    lambda: admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND application_name = 'bgg-reliability' AND wait_event_type = 'Lock'",
                        name,
                    ),
                    "the service's read to wait on the table lock",
                )
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND application_name = 'bgg-reliability'",
                    name,
                )
                _assert_unavailable(await read)
                await transaction.rollback()
            finally:
                await locker.close()
            # The dead connections were dropped from the pool: the next read just works.
            assert (await client.get("/api/public/games")).status_code == 200


@postgres_only
async def test_a_database_refusing_connections_answers_503_then_recovers(
    own_postgres: str, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    name = make_url(own_postgres).database
    async with served(create_app(_settings(own_postgres, tmp_path))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/api/public/games")).status_code == 200
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                for path in ("/api/public/games", "/api/public/games/1"):
                    _assert_unavailable(await client.get(path))
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                # Readiness is public: it says what kind of failure, not the driver's words.
                assert name is not None and name not in ready.text
                assert "accepting" not in ready.text
            finally:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert (await client.get("/api/public/games")).status_code == 200
            assert (await client.get("/health/ready")).status_code == 200


@postgres_only
async def test_too_many_clients_answers_503_and_readiness_names_no_role(
    own_postgres: str, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    role = f"bggrel_full_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    try:
        url = make_url(own_postgres).set(username=role).render_as_string(hide_password=False)
        settings = _settings(url, tmp_path).model_copy(update={"auto_migrate": False})
        async with served(create_app(settings)) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                _assert_unavailable(await client.get("/api/public/games"))
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                assert role not in ready.text
    finally:
        await admin.execute(f'DROP ROLE "{role}"')


async def _a_game_and_a_failure(database: Database) -> tuple[int, int]:
    game_id = await add_row(database, BoardGame(bgg_id=1, title="Game 1"))
    failure_id = await add_row(
        database, BackgroundTaskFailure(task_type="thumbnail_download", error_message="x")
    )
    return game_id, failure_id


async def _assert_no_write_is_taken_and_not_ready(
    client: httpx.AsyncClient, game_id: int, failure_id: int
) -> None:
    resolve = f"/api/admin/monitoring/background-failures/{failure_id}/resolve"
    _assert_unavailable(await client.post(resolve, headers=AUTH))
    _assert_unavailable(await client.delete(f"/api/admin/games/{game_id}", headers=AUTH))
    assert (await client.get(f"/api/public/games/{game_id}")).status_code == 200  # reads work
    ready = await client.get("/health/ready")
    assert ready.status_code == 503, ready.text
    assert ready.headers["Retry-After"] == "5"
    assert ready.json()["reason"] == READ_ONLY_REASON


@postgres_only
async def test_a_read_only_postgres_answers_503_and_is_not_ready(
    own_postgres: str, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    """What a service sees after a failover onto a standby: it answers, but takes no write."""
    name = make_url(own_postgres).database
    app = create_app(_settings(own_postgres, tmp_path))
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        game_id, failure_id = await _a_game_and_a_failure(app.state.services.database)
        terminate = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()"
        )
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            await admin.execute(terminate, name)  # new connections pick the setting up
            await _assert_no_write_is_taken_and_not_ready(client, game_id, failure_id)
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            await admin.execute(terminate, name)
        assert (await client.get("/health/ready")).status_code == 200


async def test_a_read_only_sqlite_file_answers_503_and_is_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "bgg.db"
    writable = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await writable.migrate()
        game_id, failure_id = await _a_game_and_a_failure(writable)
    finally:
        await writable.close()
    # `BEGIN IMMEDIATE`, readiness's old probe, succeeds on such a file.
    read_only = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    async with served(create_app(_settings(read_only, tmp_path))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            await _assert_no_write_is_taken_and_not_ready(client, game_id, failure_id)


def _with_a_bug(app: FastAPI) -> FastAPI:
    async def bug(session: SessionDep) -> dict[str, str]:
        await session.execute(text("SELEC 1"))  # a typo: a bug, whatever the backend says
        return {}

    app.add_api_route("/bug", bug)
    return app


async def test_a_real_bug_stays_500_and_keeps_the_connection_open(settings: Settings) -> None:
    async with served(_with_a_bug(create_app(settings))) as url:
        port = int(url.rsplit(":", 1)[1])
        sock = raw_request(port, "GET", "/bug", {})
        try:
            first = await read_response(sock)
            assert first.startswith(b"HTTP/1.1 500")
            assert b'"code":"internal_error"' in first
            # Same connection, next request: it must be answered, not find a closed socket.
            sock.setblocking(True)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            second = await read_response(sock)
        finally:
            sock.close()
        assert second.startswith(b"HTTP/1.1 200"), second
