"""No write answers 2xx before its transaction is committed (issue 12, item 1).

FastAPI runs a `yield` dependency's exit after the response is sent unless the dependency
says `scope="function"`; the session dependency commits in its exit, so these tests watch
from a real socket what a client would see: a commit that fails must be the answer (503 or
409 in the error shape), and no answer may leave while the commit is still waiting.
"""

from __future__ import annotations

import select
import sqlite3
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select as sql_select

from chaos.fakes import FaultRule
from system.app import create_app
from system.config import Settings
from system.container import Overrides, Services
from system.db.database import Database
from system.db.models import BackgroundTaskFailure, BoardGame
from tests.api.served import (
    add_row,
    asyncpg_dsn,
    raw_request,
    read_response,
    refuse_commits,
    served,
)
from tests.conftest import ADMIN_TOKEN, NoSleep, make_settings, migrate_database
from tests.fakes import Upstreams
from tests.support.waiting import eventually

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
postgres_only = pytest.mark.postgres


async def _game(database: Database, bgg_id: int) -> int:
    return await add_row(database, BoardGame(bgg_id=bgg_id, title=f"Game {bgg_id}"))


async def _resolved(database: Database, failure_id: int) -> bool | None:
    async with database.session() as session:
        return await session.scalar(
            sql_select(BackgroundTaskFailure.resolved).where(BackgroundTaskFailure.id == failure_id)
        )


def _pg_settings(url: str, tmp_path: Path) -> tuple[Settings, str]:
    settings = make_settings(
        database_url=url, thumbnail_dir=tmp_path / "thumbnails", spool_path=tmp_path / "spool.jsonl"
    )
    return settings, asyncpg_dsn(url)


@postgres_only
async def test_a_resolve_whose_commit_fails_answers_503_and_stays_unresolved(
    own_postgres: str, tmp_path: Path
) -> None:
    settings, dsn = _pg_settings(own_postgres, tmp_path)
    app = create_app(settings)
    async with served(app) as url:
        database: Database = app.state.services.database
        failure_id = await add_row(
            database, BackgroundTaskFailure(task_type="thumbnail_download", error_message="x")
        )
        await refuse_commits(dsn, "background_task_failures", "UPDATE")
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                f"/api/admin/monitoring/background-failures/{failure_id}/resolve", headers=AUTH
            )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert response.json()["error"]["code"] == "commit_failed"
        assert await _resolved(database, failure_id) is False


@postgres_only
async def test_a_delete_waiting_on_a_row_lock_has_not_answered_yet(
    own_postgres: str, tmp_path: Path
) -> None:
    settings, dsn = _pg_settings(own_postgres, tmp_path)
    app = create_app(settings)
    async with served(app) as url:
        database: Database = app.state.services.database
        game_id = await _game(database, 101)
        locker = await asyncpg.connect(dsn)
        # Activity statistics are a snapshot within a transaction: watch from outside it.
        watcher = await asyncpg.connect(dsn)
        try:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("SELECT id FROM boardgames WHERE id = $1 FOR UPDATE", game_id)
            port = int(url.rsplit(":", 1)[1])
            sock = raw_request(port, "DELETE", f"/api/admin/games/{game_id}", AUTH)
            try:
                # Wait (bounded, by polling) until the service's DELETE waits on our lock.
                await eventually(
                    lambda: watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND application_name = 'bgg-reliability' AND query LIKE 'DELETE%'"
                    ),
                    "the service's DELETE to wait on the row lock",
                )
                readable, _, _ = select.select([sock], [], [], 0)
                assert not readable, "answered while the DELETE was still waiting on the lock"
                await transaction.rollback()
                head = await read_response(sock)
            finally:
                sock.close()
        finally:
            await locker.close()
            await watcher.close()
        assert head.startswith(b"HTTP/1.1 204")
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get(f"/api/public/games/{game_id}")).status_code == 404


async def test_a_game_is_gone_for_the_next_request_once_the_delete_answered(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with served(app) as url:
        database: Database = app.state.services.database
        async with httpx.AsyncClient(base_url=url) as client:
            seen_after_delete = 0
            for bgg_id in range(1, 41):
                game_id = await _game(database, bgg_id)
                deleted = await client.delete(f"/api/admin/games/{game_id}", headers=AUTH)
                assert deleted.status_code == 204
                if (await client.get(f"/api/public/games/{game_id}")).status_code != 404:
                    seen_after_delete += 1
        assert seen_after_delete == 0


async def test_a_delete_whose_commit_cannot_get_the_sqlite_lock_answers_503(
    tmp_path: Path,
) -> None:
    """...and keeps the game's thumbnail file: it is removed only once a delete commits."""
    path = tmp_path / "locked.db"
    thumbnail = tmp_path / "thumbnails" / "1-a.png"
    thumbnail.parent.mkdir()
    thumbnail.write_bytes(b"\x89PNG\r\n\x1a\n")
    # Migrated beforehand: under load the app's own migration could outlast the short busy
    # timeout below (its limit is four of them) and leave the schema short of head.
    await migrate_database(f"sqlite+aiosqlite:///{path}")
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        database_connect_timeout=0.2,  # SQLite's busy timeout: give up on the lock quickly
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
    )
    app = create_app(settings)
    async with served(app) as url:
        database: Database = app.state.services.database
        game_id = await add_row(
            database, BoardGame(bgg_id=7, title="Game 7", thumbnail_path=str(thumbnail))
        )
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.delete(f"/api/admin/games/{game_id}", headers=AUTH)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert response.json()["error"]["status"] == 503
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get(f"/api/public/games/{game_id}")).status_code == 200
    assert thumbnail.exists()


def _with_upstreams(url: str, upstreams: Upstreams, tmp_path: Path) -> tuple[FastAPI, str]:
    settings, dsn = _pg_settings(url, tmp_path)
    settings = settings.model_copy(
        update={
            "bgg_base_url": upstreams.bgg_base_url,
            "image_allowed_hosts": [f"127.0.0.1:{upstreams.cdn.port}"],
        }
    )
    return create_app(settings, overrides=Overrides(sleep=NoSleep())), dsn


@postgres_only
async def test_an_import_whose_commit_fails_answers_503_and_stores_nothing(
    own_postgres: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    """The import commits through `Database.session()`, not the request's session."""
    app, dsn = _with_upstreams(own_postgres, upstreams, tmp_path)
    await refuse_commits(dsn, "boardgames", "INSERT OR UPDATE")
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/api/admin/games/import/28720", headers=AUTH)
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert response.json()["error"]["code"] == "commit_failed"
        assert (await client.get("/api/public/games")).json()["total"] == 0


@postgres_only
async def test_an_import_whose_job_cannot_commit_leaves_neither_game_nor_job(
    own_postgres: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    """The outbox: the thumbnail job commits with the game or not at all (issue 11)."""
    app, dsn = _with_upstreams(own_postgres, upstreams, tmp_path)
    await refuse_commits(dsn, "background_jobs", "INSERT")
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/api/admin/games/import/28720", headers=AUTH)
        assert response.status_code == 503, response.text
        assert (await client.get("/api/public/games")).json()["total"] == 0
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM background_jobs") == 0
        assert await connection.fetchval("SELECT count(*) FROM boardgames") == 0
    finally:
        await connection.close()


@postgres_only
async def test_a_retry_whose_result_went_to_the_spool_answers_503_not_success(
    own_postgres: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    app, dsn = _with_upstreams(own_postgres, upstreams, tmp_path)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        services: Services = app.state.services
        upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
        assert (await client.post("/api/admin/games/import/28720", headers=AUTH)).is_success
        await services.settle()
        listing = await client.get("/api/admin/monitoring/background-failures", headers=AUTH)
        (failure,) = listing.json()["failures"]
        upstreams.cdn_app.engine.clear()
        # The download now works; storing its run (and resolving the failure) cannot commit.
        await refuse_commits(dsn, "background_task_runs", "INSERT")
        response = await client.post(
            f"/api/admin/monitoring/background-failures/{failure['id']}/retry", headers=AUTH
        )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        error = response.json()["error"]
        assert (error["code"], error["succeeded"], error["recorded"]) == (
            "result_not_saved",
            True,
            "spooled",
        )
        assert "resolved" not in error["message"]
        assert await _resolved(services.database, failure["id"]) is False
        assert services.recorder.spool.pending() == 1
