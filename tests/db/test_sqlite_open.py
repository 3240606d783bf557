"""A SQLite file that cannot be opened leaves no aiosqlite worker thread behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from system.db.engine import create_engine


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
