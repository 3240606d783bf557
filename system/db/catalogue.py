"""The catalogue's version, read cheaply and never stale: what conditional reads check.

Why a version row and not something cheaper (the trade-off, issue 14):

- an in-process counter, or a cache invalidated by PostgreSQL's LISTEN/NOTIFY, costs no
  query, but another process's write (`--workers N`, `python -m system worker`, another
  host) reaches it only some time after its commit: a client that saw an import answered
  201 could still get a 304 for the old page from another worker. Not "at once";
- SQLite's `PRAGMA data_version` is per connection and SQLite only;
- the version row (migration 0007) is bumped by triggers in the writer's own transaction, so
  it changes exactly when the write becomes visible, on both backends, whoever wrote. The
  price is one primary-key read per conditional request, and `VersionReader` shares that
  read between the requests that arrive while one is in flight: under load it is one query
  per database round trip for the whole process, not one per request.

SQLite reads the row on a connection of its own, in the event loop, without the thread hop
of every aiosqlite call: a primary-key read of a cached page takes microseconds, less than
the hop, and in WAL mode a reader never waits for a writer. So each SQLite request reads the
version itself, shared with nobody. Should that read fail at all (busy during a WAL recovery,
a file gone) the request takes the ordinary path, which reports the fault as any read does.

Correctness of sharing: a request may use a version read only if that read *began after the
request arrived*; it then sees every write that was committed before the request, as its
own query would. A read already in flight when a request arrives may predate a write the
client has seen answered, so that request waits for the next read instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from system.db.models import CatalogueVersion

_READ_VERSION = select(CatalogueVersion.version).where(CatalogueVersion.id == 1)
_PLAIN_READ_VERSION = str(
    _READ_VERSION.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
)


class VersionReader:
    """Reads the catalogue version for any number of concurrent callers, one query at a time."""

    def __init__(self, engine: AsyncEngine, *, sqlite_in_loop: bool = True) -> None:
        """`sqlite_in_loop=False` makes SQLite share reads as PostgreSQL does (tests)."""
        self._engine = engine
        #: The callers waiting for the next read (not begun yet), or None.
        self._next: asyncio.Future[int] | None = None
        #: The running read loop (held: the event loop keeps only a weak reference).
        self._task: asyncio.Task[None] | None = None
        url = engine.url
        #: The SQLite file to read in the event loop (not a private `:memory:` database).
        self._sqlite_file = (
            url.database
            if sqlite_in_loop
            and url.get_backend_name() == "sqlite"
            and url.database not in (None, "", ":memory:")
            else None
        )
        self._sqlite: sqlite3.Connection | None = None

    async def read_now(self) -> int:
        """The version, by a query of this caller's own (no sharing)."""
        async with self._engine.connect() as conn:
            version = await self._read_on(conn)
        if version is None:
            raise LookupError("catalogue_version has no row: the schema is not at head")
        return int(version)

    async def current(self) -> int:
        """The version as of some moment after this call began (shares the query).

        A database fault is raised to every caller that waited for that read (as asyncio
        does for every awaiter of one future), never retried here: in an outage each
        request costs one failed read, not two.
        """
        if self._sqlite_file is not None:
            version = self._read_sqlite_here()
            if version is not None:
                return version
            return await self.read_now()
        waiting = self._next
        if waiting is None:
            waiting = self._next = asyncio.get_running_loop().create_future()
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._read_for_waiters())
        # Shielded: a cancelled caller must not cancel the read the others wait for.
        return await asyncio.shield(waiting)

    async def _read_on(self, conn: AsyncConnection) -> int | None:
        if self._engine.dialect.name == "postgresql":
            # asyncpg's own prepared statement: SQLAlchemy's execution around one tiny
            # query costs more than the round trip. Any failure is asked again through
            # SQLAlchemy, which reports it as every read does (a disconnect invalidates the
            # pool, and the error maps to 503).
            with contextlib.suppress(Exception):
                driver: Any = (await conn.get_raw_connection()).driver_connection
                return int(await driver.fetchval(_PLAIN_READ_VERSION))
        return await conn.scalar(_READ_VERSION)

    def _read_sqlite_here(self) -> int | None:
        """The version read in the event loop, or None when that failed for any reason."""
        try:
            if self._sqlite is None:
                assert self._sqlite_file is not None
                uri = self._sqlite_file.startswith("file:")
                # timeout=0: busy is a fallback to the thread, never a wait in the loop.
                # Autocommit: the read transaction ends with the statement (fetchall).
                self._sqlite = sqlite3.connect(
                    self._sqlite_file, timeout=0, isolation_level=None, uri=uri,
                    check_same_thread=False,
                )  # fmt: skip
            rows = self._sqlite.execute(_PLAIN_READ_VERSION).fetchall()
        except sqlite3.Error:
            self.close()
            return None
        return int(rows[0][0]) if rows else None

    def close(self) -> None:
        """Close the SQLite connection of the event-loop reads (reopened when needed)."""
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def _read_for_waiters(self) -> None:
        try:
            while self._next is not None:
                # Everyone waiting on `waiting` arrived before this read begins.
                waiting, self._next = self._next, None
                try:
                    version = await self.read_now()
                except Exception as exc:
                    _fail(waiting, exc)
                except BaseException:
                    _fail(waiting, ConnectionError("version reader stopped"))
                    raise
                else:
                    if not waiting.done():
                        waiting.set_result(version)
        finally:
            self._task = None
            if self._next is not None:
                # Stopped by cancellation (shutdown) with callers still waiting.
                _fail(self._next, ConnectionError("version reader stopped"))
                self._next = None


def _fail(waiting: asyncio.Future[int], exc: Exception) -> None:
    if not waiting.done():
        waiting.set_exception(exc)
        # Its waiters may all be gone (cancelled): no "exception never retrieved" log.
        waiting.exception()
