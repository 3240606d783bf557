"""What the public reads and a breaker rejection do on the way (issue 14, items 2 and 4):
no thread-pool hop, and one statement for a page and its total."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text

from system.db.models import BoardGame
from tests.api.served import statements


@asynccontextmanager
async def thread_pool_exhausted() -> AsyncIterator[None]:
    """The event loop's default thread pool (FastAPI's, for `def` routes and dependencies)
    with its only token held until the block ends."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    total = limiter.total_tokens
    limiter.total_tokens = 1
    release = threading.Event()
    holder = asyncio.create_task(anyio.to_thread.run_sync(release.wait))
    try:
        while limiter.borrowed_tokens < 1:
            await asyncio.sleep(0)
        yield
    finally:
        release.set()
        await holder
        limiter.total_tokens = total


async def _seed(app: FastAPI, count: int) -> list[int]:
    async with app.state.database.session() as session:
        games = [BoardGame(bgg_id=i + 1, title=f"Game {i:03d}") for i in range(count)]
        session.add_all(games)
        await session.flush()
        return [g.id for g in games]


async def test_reads_and_a_rejection_need_no_thread_pool(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A `def` dependency runs in the thread pool: one hop per request, and a wait for a
    token whenever slow synchronous work holds them all. None of these needs one."""
    (game_id,) = await _seed(app, 1)
    await app.state.services.bgg_breaker.reset("open")
    async with thread_pool_exhausted():
        async with asyncio.timeout(10):  # a bound for the failure, never reached on success
            assert (await client.get(f"/api/public/games/{game_id}")).status_code == 200
            assert (await client.get("/api/public/games")).status_code == 200
            rejected = await client.post("/api/admin/games/import/13", headers=admin_headers)
            assert rejected.status_code == 503 and rejected.headers["Retry-After"]
            assert rejected.json()["error"]["code"] == "bgg_unavailable"


def _about_games(seen: list[str]) -> list[str]:
    return [statement for statement in seen if "boardgames" in statement.lower()]


async def test_a_page_and_its_total_are_one_statement(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _seed(app, 5)
    cases: list[tuple[dict[str, str | int], int, int, int]] = [
        # (params, total, items, statements about the games)
        ({"limit": 10}, 5, 5, 1),
        ({"limit": 3, "offset": 3}, 5, 2, 1),
        ({"limit": 5}, 5, 5, 1),
        ({"limit": 2, "q": "game"}, 5, 2, 1),
        ({"limit": 2, "q": "game 00", "sort": "-title"}, 5, 2, 1),
        ({"q": "game 00", "limit": 10, "offset": 2}, 5, 3, 1),
        ({"q": "nothing like it"}, 0, 0, 1),
        # A page past the end has no row to carry the total: counted on its own.
        ({"offset": 7}, 5, 0, 2),
        ({"offset": 1, "q": "game 004"}, 1, 0, 2),
    ]
    for params, total, items, sent in cases:
        with statements(app) as seen:
            page = (await client.get("/api/public/games", params=params)).json()
        assert (page["total"], len(page["items"])) == (total, items), params
        about_games = _about_games(seen)
        assert len(about_games) == sent, (params, seen)
        assert sum("count(" in statement.lower() for statement in about_games) == sent


async def test_a_postgres_read_opens_no_transaction(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """BEGIN and COMMIT are two round trips a read does not need: each of its statements is
    a transaction of its own (READ COMMITTED gave each its own snapshot anyway)."""
    if app.state.database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads begin no transaction to start with")
    (game_id,) = await _seed(app, 1)
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    pool = app.state.database.engine.sync_engine.pool

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(log)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(log)

    event.listen(pool, "checkout", checkout)
    event.listen(pool, "checkin", checkin)
    try:
        assert (await client.get(f"/api/public/games/{game_id}")).status_code == 200
        assert (await client.get("/api/public/games", params={"limit": 1})).status_code == 200
        by_reads = list(sent)
        # The logger sees transactions where there are some: a write session's.
        async with app.state.database.session() as session:
            await session.execute(text("SELECT 1"))
    finally:
        event.remove(pool, "checkout", checkout)
        event.remove(pool, "checkin", checkin)

    def transactional(query: str) -> bool:
        return query.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))

    assert [q for q in sent if transactional(q)], sent
    assert not [q for q in by_reads if transactional(q)], by_reads
