"""The service's database from the outside: where it is, how to break it, what it holds.

Two backends, one interface (`Backend`):

- **SQLite** (`SqliteBackend`). An embedded database has no network to cut, and a running
  service keeps its file open, so renaming or chmod-ing the file changes nothing for the
  connections it already has. What really takes SQLite away from a service is *another
  process holding the lock*: a long batch job, a backup or a migration in a transaction. The
  harness does exactly that: its own connection takes the write lock (`BEGIN IMMEDIATE`) for
  longer than the service's busy timeout, so every write of the service fails with
  "database is locked" while reads (WAL) go on. Releasing the lock ends the outage.
- **PostgreSQL** (`PostgresBackend`). A throw-away database is created next to the one the
  URL names (that one is never touched) and dropped at the end; the service reaches it
  through the TCP fault proxy, so an outage is the proxy going down: open connections are
  closed and new ones refused, as when the server or the network goes away.

Reading the tables uses the stdlib `sqlite3` or `asyncpg` directly, never the service. A table
or column the service under test does not have (a version before the job table) reads as
empty, so the checker judges an older service by what it left, not by a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from chaos.proxy import ProxyServer
from chaos.service import HarnessError

RUN_COLUMNS = (
    "record_id", "task_type", "game_id", "failure_id", "outcome", "attempts", "trigger",
    "error_type", "started_at", "finished_at", "job_id",
)  # fmt: skip
#: Every column: `job_id` exists only since the job table (migration 0006); the rest is kept.
RUNS_SQL = "SELECT * FROM background_task_runs"
JOBS_SQL = (
    "SELECT id, task_type, payload, trigger, status, attempts, max_attempts, lease_expiries, "
    "run_after, lease_owner, lease_expires_at, dedupe_key, failure_id, last_error_type, "
    "created_at, updated_at, started_at, finished_at FROM background_jobs"
)
GAMES_SQL = "SELECT id, bgg_id FROM boardgames"
FAILURES_SQL = (
    "SELECT id, task_type, game_id, error_type, retry_count, url, resolved, resolved_at, "
    "created_at FROM background_task_failures"
)


@dataclass(frozen=True, slots=True)
class TaskRows:
    """The task tables, as plain dicts (timestamps aware, UTC; a job's payload decoded)."""

    runs: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    #: `background_jobs` (empty when the service has no job table: see `has_jobs`).
    jobs: list[dict[str, Any]] = field(default_factory=list)
    #: (id, bgg_id) of every game, for "two games with one bgg_id".
    games: list[dict[str, Any]] = field(default_factory=list)
    #: Whether the database has a job table at all (a service from before the queue has not).
    has_jobs: bool = False
    #: The database's clock when read ("queued and due" is judged on it, as the service does).
    now: datetime | None = None


class Backend(Protocol):
    """A database the harness gives to a service, can take away, and can read."""

    kind: str

    @property
    def service_url(self) -> str:
        """`DATABASE_URL` for the service."""
        ...

    async def read(self) -> TaskRows:
        """Every task run and failure row."""
        ...

    async def outage_start(self) -> None:
        """Make the database unavailable to the service."""
        ...

    async def outage_end(self) -> None:
        """Give it back."""
        ...

    async def close(self) -> None:
        """End any outage and drop what the harness created."""
        ...

    def game_locked(self, game_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a lock that any commit deleting or changing game `game_id` must wait for."""
        ...

    async def game_exists(self, game_id: int) -> bool:
        """Whether game `game_id` is in the committed state (a connection of the harness's)."""
        ...


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_TIMES = (
    "started_at", "finished_at", "resolved_at", "created_at", "updated_at", "run_after",
    "lease_expires_at",
)  # fmt: skip


def _rows(
    columns: list[str], rows: list[Any], keep: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = dict(zip(columns, row, strict=True))
        if keep is not None:
            item = {key: item.get(key) for key in keep}
        for key in _TIMES:
            if key in item:
                item[key] = _utc(item[key])
        if isinstance(item.get("payload"), str | bytes):
            with contextlib.suppress(ValueError):
                item["payload"] = json.loads(item["payload"])
        if "resolved" in item and item["resolved"] is not None:
            item["resolved"] = bool(item["resolved"])
        out.append(item)
    return out


class SqliteBackend:
    """A SQLite file; an outage is a foreign write lock held longer than the busy timeout."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: sqlite3.Connection | None = None

    @property
    def service_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    def _read(self) -> TaskRows:
        if not self.path.exists():
            return TaskRows([], [])
        # Read-only and with a busy timeout: the service may be writing right now.
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            # One read transaction: the tables agree with each other (a WAL snapshot).
            conn.execute("BEGIN")
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "background_task_runs" not in tables:
                return TaskRows([], [])

            def read(sql: str, keep: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
                cursor = conn.execute(sql)
                columns = [d[0] for d in cursor.description]
                return _rows(columns, cursor.fetchall(), keep)

            has_jobs = "background_jobs" in tables
            return TaskRows(
                read(RUNS_SQL, RUN_COLUMNS),
                read(FAILURES_SQL),
                read(JOBS_SQL) if has_jobs else [],
                read(GAMES_SQL) if "boardgames" in tables else [],
                has_jobs=has_jobs,
                # The format the service's queue writes times in (system/db/jobs.py).
                now=_utc(conn.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").fetchone()[0]),
            )
        finally:
            conn.close()

    async def read(self) -> TaskRows:
        return await asyncio.to_thread(self._read)

    def _take_lock(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")  # the write lock; WAL readers are not blocked
        self._lock = conn

    def _release_lock(self) -> None:
        conn, self._lock = self._lock, None
        if conn is not None:
            conn.execute("ROLLBACK")
            conn.close()

    async def outage_start(self) -> None:
        if self._lock is None:
            await asyncio.to_thread(self._take_lock)

    async def outage_end(self) -> None:
        await asyncio.to_thread(self._release_lock)

    async def close(self) -> None:
        await self.outage_end()

    @contextlib.asynccontextmanager
    async def game_locked(self, game_id: int) -> AsyncIterator[None]:
        # SQLite locks the whole file: the write lock holds back every commit, this one too.
        conn = await asyncio.to_thread(self._write_lock)
        try:
            yield
        finally:
            await asyncio.to_thread(_rollback_and_close, conn)

    def _write_lock(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        return conn

    async def game_exists(self, game_id: int) -> bool:
        return await asyncio.to_thread(self._game_exists, game_id)

    def _game_exists(self, game_id: int) -> bool:
        # A reader of its own: in WAL it sees the last commit, whoever holds the write lock.
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT 1 FROM boardgames WHERE id = ?", (game_id,)).fetchone()
        finally:
            conn.close()
        return row is not None


def _rollback_and_close(conn: sqlite3.Connection) -> None:
    conn.execute("ROLLBACK")
    conn.close()


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` as a plain libpq URL for asyncpg."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise HarnessError(f"not a PostgreSQL URL: {parts.scheme}://...")
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


class PostgresBackend:
    """A throw-away database next to `admin_url`'s, reached by the service through a proxy."""

    kind = "postgresql"

    def __init__(
        self, admin_url: str, proxies: ProxyServer | None, *, proxy_name: str = "postgres"
    ) -> None:
        self.admin_dsn = asyncpg_dsn(admin_url)
        self.proxies = proxies
        self.proxy_name = proxy_name
        self.name = f"chaos_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._created = False
        self._existing: str | None = None
        parts = urlsplit(self.admin_dsn)
        self._netloc = parts.netloc
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5432
        self._proxy_port = 0

    @classmethod
    def existing(cls, url: str) -> PostgresBackend:
        """Read-only access to a database someone else runs (`--target`): no outage, no drop."""
        backend = cls(url, None)
        backend._existing = asyncpg_dsn(url)
        return backend

    async def create(self) -> None:
        """Create the database and the proxy in front of the server."""
        assert self.proxies is not None, "an existing database is not created"
        try:
            conn = await asyncpg.connect(self.admin_dsn, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise HarnessError(
                f"cannot reach PostgreSQL at {self._host}:{self._port}: {exc}"
            ) from None
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            self._created = True
        finally:
            await conn.close()
        info = self.proxies.create(self.proxy_name, upstream=(self._host, self._port))
        self._proxy_port = int(str(info["listen"]).rsplit(":", 1)[1])

    @property
    def direct_dsn(self) -> str:
        """The throw-away database, not through the proxy (for the harness's reads)."""
        if self._existing is not None:
            return self._existing
        return urlunsplit(("postgresql", self._netloc, f"/{self.name}", "", ""))

    @property
    def service_url(self) -> str:
        userinfo = self._netloc.rpartition("@")[0]
        netloc = (
            f"{userinfo}@127.0.0.1:{self._proxy_port}"
            if userinfo
            else (f"127.0.0.1:{self._proxy_port}")
        )
        return urlunsplit(("postgresql+asyncpg", netloc, f"/{self.name}", "", ""))

    async def read(self) -> TaskRows:
        conn = await asyncpg.connect(self.direct_dsn, timeout=5)
        try:
            exists = await conn.fetchval("SELECT to_regclass('background_task_runs') IS NOT NULL")
            if not exists:
                return TaskRows([], [])
            has_jobs = bool(
                await conn.fetchval("SELECT to_regclass('background_jobs') IS NOT NULL")
            )
            # One snapshot for every table (and its clock), so they agree with each other.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                now = await conn.fetchval("SELECT now()")
                runs = await conn.fetch(RUNS_SQL)
                failures = await conn.fetch(FAILURES_SQL)
                jobs = await conn.fetch(JOBS_SQL) if has_jobs else []
                games = await conn.fetch(GAMES_SQL)
        finally:
            await conn.close()

        def plain(records: list[Any], keep: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
            columns = list(records[0].keys()) if records else []
            return _rows(columns, [tuple(r) for r in records], keep)

        return TaskRows(
            plain(runs, RUN_COLUMNS),
            plain(failures),
            plain(jobs),
            plain(games),
            has_jobs=has_jobs,
            now=_utc(now),
        )

    @contextlib.asynccontextmanager
    async def game_locked(self, game_id: int) -> AsyncIterator[None]:
        # The row lock a DELETE or UPDATE of that game waits for (a plain read does not).
        conn = await asyncpg.connect(self.direct_dsn, timeout=5)
        try:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM boardgames WHERE id = $1 FOR UPDATE", game_id)
                yield
        finally:
            await conn.close()

    async def game_exists(self, game_id: int) -> bool:
        conn = await asyncpg.connect(self.direct_dsn, timeout=5)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM boardgames WHERE id = $1", game_id))
        finally:
            await conn.close()

    async def outage_start(self) -> None:
        if self.proxies is None:
            raise HarnessError("cannot take down a database the harness does not front")
        self.proxies.down(self.proxy_name)

    async def outage_end(self) -> None:
        if self.proxies is not None and self._created:
            self.proxies.up(self.proxy_name)

    async def close(self) -> None:
        if not self._created:
            return
        with contextlib.suppress(Exception):  # the proxy may be gone; dropping matters more
            await self.outage_end()
        conn = await asyncpg.connect(self.admin_dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._created = False
        finally:
            await conn.close()
