"""The service's handle on its database: engine, sessions, schema state and readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from system.db import migrate
from system.db.catalogue import VersionReader
from system.db.engine import create_engine, create_sessionmaker
from system.db.errors import CommitFailed, describe, is_read_only

logger = logging.getLogger(__name__)


class Database:
    """Owns one engine for the app's lifetime; built by the lifespan, closed by it."""

    def __init__(self, database_url: str, *, connect_timeout: float = 5.0) -> None:
        self.url = database_url
        self.engine: AsyncEngine = create_engine(database_url, connect_timeout=connect_timeout)
        self.sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(self.engine)
        # PostgreSQL reads run each statement in its own transaction (as READ COMMITTED
        # gives each statement its own snapshot anyway): no BEGIN and no COMMIT round trip.
        # SQLite reads begin no transaction to start with (and switching its connection's
        # mode would cost two thread hops), so they keep the engine as it is.
        reader = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.read_sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(reader)
        #: What the public reads check before reading any game (`system/db/catalogue.py`).
        self.catalogue_version = VersionReader(reader)
        self.connect_timeout = connect_timeout
        self.schema_ready = False
        self._migrator: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block ends cleanly and rolls back otherwise.

        Every write in the service commits here (the API's session dependency included), so a
        commit that fails is always the same error: `CommitFailed`, wrapping the driver's.
        """
        async with self.sessionmaker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            try:
                await session.commit()
            except Exception as exc:
                # Closing the session (the `async with`) rolls back what is left.
                raise CommitFailed(exc) from exc

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads that need no transaction around them (the public catalogue).

        Nothing commits at its end. On PostgreSQL each statement is its own transaction
        (autocommit), so a write through it would be saved at once, outside any commit:
        never write through it; writes use `session`.
        """
        async with self.read_sessionmaker() as session:
            yield session

    async def migrate(self) -> None:
        """Upgrade to head now (raises when the database is unreachable)."""
        async with asyncio.timeout(self.connect_timeout * 4):
            await migrate.upgrade(self.engine)
        self.schema_ready = True

    async def auto_migrate(self, *, retry_every: float = 2.0) -> None:
        """Upgrade now; when the database does not answer, keep retrying in the background.

        The app must come up (and `/health` answer) even when the database is down at start;
        readiness stays 503 until the schema is at head.
        """
        try:
            await self.migrate()
        except Exception as exc:
            logger.error("database migration failed, will retry: %s", _one_line(exc))
            self._migrator = asyncio.create_task(self._migrate_until_done(retry_every))

    async def _migrate_until_done(self, retry_every: float) -> None:
        while True:
            await asyncio.sleep(retry_every)
            try:
                await self.migrate()
            except Exception as exc:  # any driver error: keep serving, try again later
                logger.debug("database migration failed again: %s", _one_line(exc))
            else:
                logger.info("database migrated after earlier failures")
                return

    async def check(self) -> str | None:
        """None when the database answers a round trip at head and takes writes; else a
        one-line reason (a read-only database, a standby after a failover, is not ready)."""
        sqlite = self.engine.dialect.name == "sqlite"
        try:
            async with asyncio.timeout(self.connect_timeout + (1 if sqlite else 0)):
                try:
                    writable = await self._takes_writes(sqlite)
                except DBAPIError as exc:
                    if not exc.connection_invalidated:
                        raise
                    # A pooled connection that died since its last use (the pool pings only
                    # idle ones) says nothing of the database: the pool has dropped it and
                    # every one as old, so ask again on a new connection.
                    writable = await self._takes_writes(sqlite)
                if not writable:
                    return READ_ONLY_REASON
                if not self.schema_ready:
                    current = await migrate.current_revision(self.engine)
                    if current != migrate.head_revision():
                        return f"database schema at {current or 'nothing'}, expected head"
                    self.schema_ready = True
        except TimeoutError:
            return "database unreachable: no answer in time"
        except Exception as exc:
            # The reason is shown to anyone (readiness is public): the kind of failure only,
            # never the driver's words, which name roles, databases and hosts.
            logger.debug("readiness check failed: %s", _one_line(exc))
            return f"database unreachable: {describe(exc)}"
        return None

    async def _takes_writes(self, sqlite: bool) -> bool:
        async with self.engine.connect() as conn:
            if sqlite:
                return await _sqlite_takes_writes(conn)
            # One round trip, as SELECT 1 was: on in a hot standby and wherever
            # `default_transaction_read_only` is set.
            setting = await conn.scalar(text("SELECT current_setting('transaction_read_only')"))
            return bool(setting != "on")

    async def close(self) -> None:
        """Stop the migrator and release every connection."""
        if self._migrator is not None:
            self._migrator.cancel()
            await asyncio.gather(self._migrator, return_exceptions=True)
        self.catalogue_version.close()
        await self.engine.dispose()


#: What readiness says about a database that answers but refuses writes.
READ_ONLY_REASON = "database is read-only: it answers but takes no writes"


async def _sqlite_takes_writes(conn: AsyncConnection) -> bool:
    """Whether this SQLite connection can write, asking for the write lock on the way.

    SELECT 1 answers while another process holds the write lock and every write fails, and
    `BEGIN IMMEDIATE` (the write lock) succeeds on a read-only file (`mode=ro`, a read-only
    mount): only a write tells. Rewriting the header's `user_version` with its own value is
    the smallest write there is (no table, no schema needed), and it is rolled back, so
    nothing reaches the file. A lock held by another writer still raises (busy: unavailable).
    """
    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
    await conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        version = int((await conn.exec_driver_sql("PRAGMA user_version")).scalar_one())
        await conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    except DBAPIError as exc:
        if is_read_only(exc):
            return False
        raise
    finally:
        await conn.exec_driver_sql("ROLLBACK")
    return True


def _one_line(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
