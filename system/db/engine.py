"""Build the async engine and session factory for a settings object (never at import time)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError, InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from system.db.errors import is_disconnect_code, sqlstate


def create_engine(
    database_url: str, *, connect_timeout: float = 5.0, ping_idle_after: float | None = None
) -> AsyncEngine:
    """An async engine for `database_url`, with the per-backend settings this service needs.

    SQLite: the folder is created, foreign keys are enforced on every connection (otherwise
    `ON DELETE SET NULL` silently does nothing), and a writer waits up to `connect_timeout`
    for another's lock (sqlite3's busy timeout) before failing.
    PostgreSQL: the session time zone is UTC, so `NOW()` defaults store UTC in `TIMESTAMP`
    columns, connecting gives up after `connect_timeout` seconds, and a pooled connection
    idle for `ping_idle_after` seconds (`PING_IDLE_AFTER`) or more is pinged before use.
    """
    url = make_url(database_url)
    connect_args: dict[str, Any] = {}
    engine_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        # A `file:` URI (`?mode=ro&uri=true`) is no path: its folder is not ours to make.
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            # A folder that cannot be made is left for the first connection to report:
            # the app still starts, and readiness says why the database is unusable.
            with contextlib.suppress(OSError):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = connect_timeout
        # As many kept connections as PostgreSQL's: an overflow connection is closed when it
        # is returned, so a burst of concurrent reads over the pool's size opened a file and
        # started a worker thread for each request.
        engine_args.update(pool_size=10, max_overflow=10)
    else:
        connect_args["timeout"] = connect_timeout
        connect_args["server_settings"] = {"timezone": "UTC", "application_name": "bgg-reliability"}
        engine_args.update(pool_size=10, max_overflow=10, pool_timeout=connect_timeout)
    engine = create_async_engine(url, connect_args=connect_args, **engine_args)
    event.listen(engine.sync_engine, "handle_error", _mark_disconnects)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "do_connect", _sqlite_do_connect)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    else:
        _ping_if_idle(engine, PING_IDLE_AFTER if ping_idle_after is None else ping_idle_after)
    return engine


#: Seconds a pooled PostgreSQL connection may sit idle and still be used without a ping.
PING_IDLE_AFTER = 1.0

_RETURNED_AT = "bgg_returned_at"


def _ping_if_idle(engine: AsyncEngine, idle_after: float) -> None:
    """Ping a pooled connection before use only when it sat idle `idle_after` seconds or more.

    `pool_pre_ping` pinged on every checkout: with asyncpg that is BEGIN, an empty query and
    ROLLBACK, three round trips before every request's own. A connection that dies while idle
    (a server restart, an idle timeout, a failover) is still found here and replaced before
    the request uses it; one killed within the last `idle_after` seconds of use fails in the
    request instead, as one killed mid-request always did: a disconnect, answered 503 with
    `Retry-After`, and the pool drops every connection as old as it (`_mark_disconnects`).
    SQLite is never pinged: its connections are files, nothing on the other side can die.
    """
    dialect = engine.dialect
    pool_events = engine.sync_engine.pool

    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def checking_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_RETURNED_AT)
        if since is None or time.monotonic() - since < idle_after:
            return  # just connected, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            # The pool replaces the connection (and, for a disconnect, every one as old).
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise InvalidatePoolError(str(exc)) from exc
            raise DisconnectionError(str(exc)) from exc

    event.listen(pool_events, "checkin", returned)
    event.listen(pool_events, "checkout", checking_out)


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


def _sqlite_do_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """SQLAlchemy's own aiosqlite connect, through `open_sqlite` (same arguments)."""
    # SQLAlchemy's own protocol types the driver connection loosely: aiosqlite's is one.
    connection: Any = await_(open_sqlite(*cargs, **cparams))
    return _SQLiteConnection(dialect.loaded_dbapi, connection)


class _SQLiteConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection, rolling back only what is open.

    A session ends with a rollback and the pool resets every returned connection with
    another; each is a hop to the connection's worker thread. A read never began a
    transaction (sqlite3 begins one before a write), so it has nothing to roll back.
    `in_transaction` is SQLite's own state, however the transaction began.
    """

    def rollback(self) -> None:
        if self._connection.in_transaction:
            super().rollback()


async def open_sqlite(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """An aiosqlite connection whose worker thread has ended if opening it failed.

    A failed open makes aiosqlite stop its worker thread without waiting for it
    (omnilib/aiosqlite#241): the thread's last act is a callback into this event loop,
    and where the loop closes first (a shutdown right after readiness found the file
    unusable) the thread dies with "Event loop is closed". Waiting for it here means a
    failure is reported once, by whoever connected.
    """
    connection = aiosqlite.connect(*args, **kwargs)
    # As SQLAlchemy's dialect does: a connection leaked by a crash never blocks exit.
    connection._thread.daemon = True
    try:
        return await connection
    except BaseException:
        # The stop is queued behind the open, which has already returned: a short wait.
        await asyncio.shield(asyncio.to_thread(connection._thread.join, 5.0))
        raise


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep their objects readable after commit (the API renders them)."""
    return async_sessionmaker(engine, expire_on_commit=False)
