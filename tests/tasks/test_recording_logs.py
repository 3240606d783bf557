"""What `TaskRecorder.record` logs when it cannot store a record: an outage is the warning
an operator waits out; any other refusal is an ERROR naming what the database said. Both
spool the record (an accepted record is never lost)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from system.db.database import Database
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from tests.tasks.outages import outage_of
from tests.tasks.test_recording import failure
from tests.tasks.test_spool_quarantine import _ALLOW, _REFUSE, _run, refused

LOGGER = "system.tasks.recording"


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


@pytest.fixture
async def refusing(backend: str, database_url: str) -> AsyncIterator[Database]:
    """A database that is up but refuses one record (a trigger raising, on every try)."""
    db = Database(database_url, connect_timeout=1)
    await _run(db, _REFUSE[backend])
    try:
        yield db
    finally:
        await _run(db, _ALLOW[backend])  # the PostgreSQL database is shared: leave no trigger
        await db.close()


async def test_a_refused_record_is_an_error_not_an_outage(
    refusing: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: "database unavailable (CommitFailed)" at WARNING, with the database up."""
    spool = Spool(tmp_path / "spool.jsonl")
    bad = refused()
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert await TaskRecorder(refusing, spool).record(bad) == "spooled"
    assert spool.pending() == 1
    messages = logged(caplog)
    assert not any("unavailable" in message for _, message in messages)
    errors = [message for level, message in messages if level == logging.ERROR]
    assert len(errors) == 1
    assert bad.record_id in errors[0]
    # The kind of refusal, in `describe`'s words (no driver text).
    assert "SQLSTATE P0001" in errors[0] or "SQLite error" in errors[0]


async def test_an_outage_is_the_unavailable_warning(
    backend: str,
    database_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with outage_of(backend, database_url, tmp_path, request) as outage:
        spool = Spool(tmp_path / "spool.jsonl")
        recorder = TaskRecorder(outage.database, spool)
        outage.down()
        await outage.database.engine.dispose()  # pooled connections went down with it
        caplog.set_level(logging.INFO, logger=LOGGER)
        for n in range(3):
            assert await recorder.record(failure(None, n)) == "spooled"
        outage.up()
    assert spool.pending() == 3
    messages = logged(caplog)
    assert [level for level, _ in messages] == [logging.WARNING]  # once per outage
    assert "database unavailable" in messages[0][1]
