"""The classification of database errors, on real errors from the real drivers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from system.db.engine import create_engine
from system.db.errors import describe, is_conflict, is_disconnect_code, is_unavailable


async def _error(url: str, statement: str) -> DBAPIError:
    engine = create_engine(url, connect_timeout=0.1)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
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
    typo = await _error(url, "SELEC 1")
    assert not is_unavailable(typo)
    assert not is_unavailable(await _error(url, "SELECT * FROM no_such_table"))
    assert is_conflict(await _error(url, "CREATE TABLE t (x INTEGER)")) is False


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
