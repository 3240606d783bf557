"""The classification of database errors, on real errors from the real drivers."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from system.db.engine import create_engine
from system.db.errors import (
    CommitFailed,
    describe,
    is_conflict,
    is_disconnect_code,
    is_read_only,
    is_unavailable,
)


async def _run(engine: AsyncEngine, statements: tuple[str, ...]) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def _error(url: str, *statements: str) -> DBAPIError:
    """The error of running `statements` in one transaction."""
    engine = create_engine(url, connect_timeout=0.1)
    try:
        with pytest.raises(DBAPIError) as caught:
            await _run(engine, statements)
        return caught.value
    finally:
        await engine.dispose()


async def test_a_locked_sqlite_file_is_unavailable_and_a_typo_is_a_bug(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    url = f"sqlite+aiosqlite:///{path}"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN IMMEDIATE")
        locked = await _error(url, "INSERT INTO t VALUES (1)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert is_unavailable(locked)
    assert describe(locked) == "the database is locked by another writer"
    # What `Database.session()` raises when the commit hits it: classified the same.
    assert is_unavailable(CommitFailed(locked))
    assert describe(CommitFailed(locked)) == "the database is locked by another writer"
    typo = await _error(url, "SELEC 1")
    assert not is_unavailable(typo)
    assert not is_unavailable(await _error(url, "SELECT * FROM no_such_table"))
    assert is_conflict(await _error(url, "CREATE TABLE t (x INTEGER)")) is False
    assert not is_unavailable(CommitFailed(typo))


async def test_a_read_only_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with contextlib.closing(sqlite3.connect(path)) as maker:
        maker.execute("CREATE TABLE t (x INTEGER)")
    refused = await _error(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true", "DELETE FROM t")
    assert is_unavailable(refused) and is_read_only(refused)
    assert describe(refused) == "the database is read-only"


@pytest.mark.postgres
async def test_a_read_only_postgres_transaction_is_unavailable_not_a_disconnect(
    postgres_session_url: str,
) -> None:
    refused = await _error(
        postgres_session_url, "SET TRANSACTION READ ONLY", "CREATE TABLE never_made (x int)"
    )
    assert is_unavailable(refused) and is_read_only(refused)
    assert not refused.connection_invalidated  # the connection is fine: it stays pooled
    assert describe(refused) == "the server answered SQLSTATE 25006"
    assert is_conflict(CommitFailed(refused)) is False


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ReadOnlySQLTransactionError,  # 25006: a standby after a failover
        asyncpg.exceptions.DiskFullError,  # 53100
        asyncpg.exceptions.PostgresIOError,  # 58030
    ],
)
def test_a_server_that_cannot_store_writes_is_unavailable(
    error: type[asyncpg.PostgresError],
) -> None:
    assert is_unavailable(error("refused"))
    assert not is_disconnect_code(error.sqlstate)


@pytest.mark.parametrize(
    ("code", "unavailable"),
    [
        ("08006", True),  # connection failure
        ("08003", True),  # connection does not exist
        ("57P01", True),  # admin shutdown: pg_terminate_backend
        ("57P03", True),  # cannot connect now
        ("53300", True),  # too many connections
        ("53100", False),  # disk full: not a connection problem
        ("55000", False),  # object not in prerequisite state: only at connect (the engine)
        ("42601", False),  # syntax error
        ("P0001", False),  # raise_exception
        (None, False),
    ],
)
def test_sqlstates_that_mean_a_refused_or_dropped_connection(
    code: str | None, unavailable: bool
) -> None:
    assert is_disconnect_code(code) is unavailable
