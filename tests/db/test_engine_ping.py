"""A pooled PostgreSQL connection is pinged before use only after sitting idle (issue 14):
one in use a moment ago costs no round trip, and one that died while idle is replaced before
a request sees it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from system.db.engine import create_engine
from tests.api.served import asyncpg_dsn
from tests.conftest import PostgresDatabases

pytestmark = pytest.mark.postgres

#: The ping's query (SQLAlchemy's asyncpg dialect sends an empty statement).
PING = ";"


async def _backend_pids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        return {int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)}


@pytest.fixture
def url(postgres_databases: PostgresDatabases) -> str:
    """An empty PostgreSQL database of the test's own (its backends get terminated)."""
    return postgres_databases.create(migrated=False)


@pytest.mark.parametrize(("idle_after", "pinged"), [(60, False), (0, True)])
async def test_a_connection_used_a_moment_ago_is_not_pinged(
    url: str, idle_after: float, pinged: bool
) -> None:
    """Used within `idle_after`: no ping. The second case shows the ping would be seen."""
    engine = create_engine(url, ping_idle_after=idle_after)
    try:
        await _backend_pids(engine)  # connect, and return the connection to the pool
        pings: list[str] = []

        def log(record: Any) -> None:
            pings.append(record.query)

        # Log on the pooled connection itself, then check it out again as a request would.
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            raw.add_query_logger(log)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            raw.remove_query_logger(log)
        assert (PING in pings) is pinged, pings
    finally:
        await engine.dispose()


async def test_an_idle_connection_killed_by_the_server_is_replaced_before_use(url: str) -> None:
    engine = create_engine(url, ping_idle_after=0)  # every pooled connection counts as idle
    try:
        (before,) = await _backend_pids(engine)
        admin = await asyncpg.connect(
            asyncpg_dsn(make_url(url).set(database="postgres").render_as_string(False))
        )
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", before)
        finally:
            await admin.close()
        # The ping finds the dead connection; the pool connects anew: the read just works.
        (after,) = await _backend_pids(engine)
        assert after != before
    finally:
        await engine.dispose()
