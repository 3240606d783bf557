"""The service's SQLite connections: no worker thread left behind by a failed open, no
reopening under a burst of reads, and no rollback hop for a read."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from system.db.engine import create_engine, create_sessionmaker
from system.db.migrate import upgrade
from system.db.models import BoardGame


def _sqlite_workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def test_a_failed_open_has_ended_its_worker_thread_when_it_raises(tmp_path: Path) -> None:
    # A file where the folder should be: the open fails, as on a read-only mount.
    (tmp_path / "not-a-folder").write_text("")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'not-a-folder' / 'x.db'}")
    before = _sqlite_workers()
    try:
        for _ in range(5):
            with pytest.raises(OperationalError, match="unable to open database file"):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            # Still running, it would call back into this loop after the caller moved on:
            # into a closed loop when a shutdown follows ("Event loop is closed").
            assert not any(t.is_alive() for t in _sqlite_workers() - before)
    finally:
        await engine.dispose()


async def test_an_opened_database_still_answers_with_the_engine_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", connect_timeout=0.25)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
            assert await conn.scalar(text("PRAGMA busy_timeout")) == 250
    finally:
        await engine.dispose()


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_a_burst_of_ten_reads_reuses_the_connections_of_the_last(
    engine: AsyncEngine,
) -> None:
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda conn, _record: opened.append(conn))

    async def read() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0)  # all ten hold a connection at once

    await asyncio.gather(*(read() for _ in range(10)))
    first = len(opened)
    await asyncio.gather(*(read() for _ in range(10)))
    # Each new connection is a file opened and a worker thread started.
    assert len(opened) == first


async def test_a_read_sends_no_rollback_and_a_write_left_open_is_rolled_back(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollbacks: list[bool] = []
    real = aiosqlite.Connection.rollback

    async def counting(self: aiosqlite.Connection) -> None:
        rollbacks.append(self.in_transaction)
        await real(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counting)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BoardGame)) == 0
    assert rollbacks == []  # the session's end and the pool's reset: nothing was open

    async with sessions() as session:
        session.add(BoardGame(bgg_id=1, title="Uncommitted"))
        await session.flush()
    assert rollbacks == [True]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BoardGame)) == 0
