"""Build the async engine and session factory for a settings object (never at import time)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from system.db.errors import is_disconnect_code, sqlstate


def create_engine(database_url: str, *, connect_timeout: float = 5.0) -> AsyncEngine:
    """An async engine for `database_url`, with the per-backend settings this service needs.

    SQLite: the folder is created, foreign keys are enforced on every connection (otherwise
    `ON DELETE SET NULL` silently does nothing), and a writer waits up to `connect_timeout`
    for another's lock (sqlite3's busy timeout) before failing.
    PostgreSQL: the session time zone is UTC, so `NOW()` defaults store UTC in `TIMESTAMP`
    columns, and connecting gives up after `connect_timeout` seconds.
    """
    url = make_url(database_url)
    connect_args: dict[str, Any] = {}
    engine_args: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        # A `file:` URI (`?mode=ro&uri=true`) is no path: its folder is not ours to make.
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            # A folder that cannot be made is left for the first connection to report:
            # the app still starts, and readiness says why the database is unusable.
            with contextlib.suppress(OSError):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = connect_timeout
    else:
        connect_args["timeout"] = connect_timeout
        connect_args["server_settings"] = {"timezone": "UTC", "application_name": "bgg-reliability"}
        engine_args.update(pool_size=10, max_overflow=10, pool_timeout=connect_timeout)
    engine = create_async_engine(url, connect_args=connect_args, **engine_args)
    event.listen(engine.sync_engine, "handle_error", _mark_disconnects)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def _mark_disconnects(context: ExceptionContext) -> None:
    """Treat a refused or dropped connection as a disconnect, whatever the driver called it.

    SQLAlchemy only recognises asyncpg's "connection is closed"; a backend ended by
    `pg_terminate_backend`, a server shutting down or a refusal at connect time (too many
    clients, `ALLOW_CONNECTIONS false`) came back as a plain `DBAPIError`. As a disconnect the
    error says so (`connection_invalidated`), and the pool throws away the dead connection
    and every other connection of the same age, so the service recovers on its own.
    """
    if context.is_disconnect or context.is_pre_ping:
        return
    connecting = context.connection is None
    if connecting or is_disconnect_code(sqlstate(context.original_exception)):
        context.is_disconnect = True


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep their objects readable after commit (the API renders them)."""
    return async_sessionmaker(engine, expire_on_commit=False)
