"""The single import's outbox on SQLite: a thumbnail job that cannot be written takes its new
game with it (issue 11; main's test covers PostgreSQL's failed commit)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx

from system.app import create_app
from system.container import Overrides
from tests.api.served import served
from tests.conftest import ADMIN_TOKEN, NoSleep, make_settings
from tests.fakes import Upstreams

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_a_new_game_whose_job_cannot_be_written_is_not_kept(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    path = tmp_path / "bgg.db"
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
        bgg_base_url=upstreams.bgg_base_url,
        image_allowed_hosts=[f"127.0.0.1:{upstreams.cdn.port}"],
    )
    app = create_app(settings, overrides=Overrides(sleep=NoSleep()))
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:

        def refuse_jobs() -> None:
            with sqlite3.connect(path) as admin:
                admin.execute(
                    "CREATE TRIGGER refuse_jobs BEFORE INSERT ON background_jobs "
                    "BEGIN SELECT RAISE(ABORT, 'job refused by the test'); END"
                )

        # In a thread: blocking the loop here would stall the service's own writers mid-way.
        await asyncio.to_thread(refuse_jobs)
        response = await client.post("/api/admin/games/import/28720", headers=AUTH)
        assert response.status_code >= 500, response.text
        assert (await client.get("/api/public/games")).json()["total"] == 0
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM boardgames").fetchone() == (0,)
