"""Real database outages for the recording tests: the network to PostgreSQL is cut at the
TCP fault proxy, SQLite's folder disappears (a lost volume). Each comes back on `up()`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from chaos.proxy import ProxyServer
from system.db import migrate
from system.db.database import Database


@dataclass(frozen=True)
class Outage:
    """A database that `down()` takes away and `up()` gives back."""

    database: Database
    down: Callable[[], object]  # what it returns is not used
    up: Callable[[], object]


@asynccontextmanager
async def postgres_outage(database_url: str, proxies: ProxyServer) -> AsyncIterator[Outage]:
    """The PostgreSQL database behind the TCP fault proxy."""
    url = make_url(database_url)
    proxies.create("pg", (url.host or "127.0.0.1", url.port or 5432))
    _host, port = proxies.address("pg")
    proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    database = Database(proxied, connect_timeout=1)
    try:
        yield Outage(database, lambda: proxies.down("pg"), lambda: proxies.up("pg"))
    finally:
        await database.close()


@asynccontextmanager
async def sqlite_outage(tmp_path: Path) -> AsyncIterator[Outage]:
    """A migrated SQLite database in a folder that goes away and comes back."""
    folder, away = tmp_path / "data", tmp_path / "away"
    database = Database(f"sqlite+aiosqlite:///{folder / 'bgg.db'}", connect_timeout=1)
    await migrate.upgrade(database.engine)
    try:
        yield Outage(database, lambda: folder.rename(away), lambda: away.rename(folder))
    finally:
        await database.close()


def outage_of(
    backend: str, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AbstractAsyncContextManager[Outage]:
    """The outage for the test's backend (`database_url` is used on PostgreSQL only: SQLite's
    database is one of its own under `tmp_path`)."""
    if backend == "postgresql":
        return postgres_outage(database_url, request.getfixturevalue("proxies"))
    return sqlite_outage(tmp_path)
