"""A spooled record the database refuses goes aside; it never blocks the records after it,
and nothing is dropped unless the database holds it.

The refusals are real: a trigger that raises for one URL, a game deleted (through another
connection) between the replay's check and its insert, another replayer storing the same
record at that moment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only

from system.db.database import Database
from system.db.models import BackgroundTaskFailure
from system.db.tasks import TaskRecord, write_task_record
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from tests.conftest import ServiceFactory
from tests.observability.test_metrics import sample
from tests.support.waiting import eventually
from tests.tasks.outages import outage_of
from tests.tasks.test_recording import counts, failure, make_game
from tests.tasks.test_spool import torn_line

REFUSED_URL = "https://cf.geekdo-images.com/refused.jpg"

_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON background_task_failures"
        f" WHEN NEW.url = '{REFUSED_URL}'"
        " BEGIN SELECT RAISE(ABORT, 'refused by the auditor'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.url = '{REFUSED_URL}' THEN RAISE EXCEPTION 'refused by the auditor';"
        " END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON background_task_failures"
        " FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
    ],
}
_ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_audit"],
    "postgresql": [
        "DROP TRIGGER refuse_audit ON background_task_failures",
        "DROP FUNCTION refuse_audit()",
    ],
}


async def _run(database: Database, statements: list[str]) -> None:
    async with database.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


@pytest.fixture
async def database(backend: str, database_url: str) -> AsyncIterator[Database]:
    """The backend's database, refusing every failure whose URL is `REFUSED_URL` (a trigger
    that raises: no outage, the same answer on every try)."""
    db = Database(database_url, connect_timeout=1)
    await _run(db, _REFUSE[backend])
    try:
        yield db
    finally:
        # The PostgreSQL database is shared by the session's tests: leave no trigger behind.
        await _run(db, _ALLOW[backend])
        await db.close()


def refused() -> TaskRecord:
    return dataclasses.replace(failure(None, 99), url=REFUSED_URL)


def quarantined_ids(spool: Spool) -> list[str]:
    lines = spool.quarantine_path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["record_id"] for line in lines]


def refusal_logs(caplog: pytest.LogCaptureFixture, record_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and record_id in r.getMessage()
        and "refused" in r.getMessage()
    ]


async def test_a_refused_record_goes_aside_and_the_rest_are_stored(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the replay stopped at the refused record on every pass (PostgreSQL), so the
    records after it never showed, or dropped it silently as "already replayed" (SQLite)."""
    spool = Spool(tmp_path / "spool.jsonl")
    bad = refused()
    for record in (failure(None, 0), bad, failure(None, 1), failure(None, 2)):
        await spool.append(record.to_json())
    recorder = TaskRecorder(database, spool)

    assert await recorder.replay() == 3
    assert await counts(database) == (3, 3)
    assert spool.pending() == 0
    assert quarantined_ids(spool) == [bad.record_id]
    assert json.loads(spool.quarantine_path.read_text(encoding="utf-8")) == bad.to_json()
    assert spool.quarantined() == 1
    assert len(refusal_logs(caplog, bad.record_id)) == 1

    assert await recorder.replay() == 0  # nothing left to try: logged and moved once
    assert len(refusal_logs(caplog, bad.record_id)) == 1
    assert spool.quarantined() == 1


async def test_an_unreadable_record_goes_aside(database: Database, tmp_path: Path) -> None:
    """Before: it stayed in the spool for good, pending for ever and replayed every pass."""
    spool = Spool(tmp_path / "spool.jsonl")
    unreadable = failure(None, 0).to_json() | {"started_at": "not a time"}
    await spool.append(unreadable)
    await spool.append(failure(None, 1).to_json())

    assert await TaskRecorder(database, spool).replay() == 1
    assert await counts(database) == (1, 1)
    assert spool.pending() == 0
    assert quarantined_ids(spool) == [unreadable["record_id"]]


async def replay_racing(
    database: Database,
    database_url: str,
    spool: Spool,
    meanwhile: Callable[[AsyncSession], Awaitable[object]],
) -> int:
    """Replay `spool`, running `meanwhile` once in a transaction of another connection just
    before the replay's first failure INSERT: after its checks, before its write (the race
    window)."""
    other = Database(database_url, connect_timeout=1)
    fired: list[bool] = []

    async def elsewhere() -> None:
        async with other.session() as session:
            await meanwhile(session)

    def hook(*args: Any) -> None:
        statement: str = args[2]
        if not fired and statement.startswith("INSERT INTO background_task_failures "):
            fired.append(True)
            await_only(elsewhere())

    event.listen(database.engine.sync_engine, "before_cursor_execute", hook)
    try:
        return await TaskRecorder(database, spool).replay()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", hook)
        await other.close()


async def test_a_failure_whose_game_was_deleted_meanwhile_is_stored_without_it(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """Before: the foreign-key error was taken for "already replayed" and the failure lost.

    The game is deleted between the replay's check that it exists and its insert. The failure
    is stored with `game_id` NULL, what `ON DELETE SET NULL` makes of it had it been stored
    first: it stays in `unresolved_failures` for an operator, with its URL and error.
    """
    game_id = await make_game(database)
    spool = Spool(tmp_path / "spool.jsonl")
    record = failure(game_id, 1)
    await spool.append(record.to_json())
    delete = text("DELETE FROM boardgames WHERE id = :id").bindparams(id=game_id)

    assert await replay_racing(database, database_url, spool, lambda s: s.execute(delete)) == 1
    assert await counts(database) == (1, 1)
    async with database.session() as session:
        stored = (await session.scalars(select(BackgroundTaskFailure))).one()
    assert (stored.game_id, stored.url, stored.resolved) == (None, record.url, False)
    assert (spool.pending(), spool.quarantined()) == (0, 0)


async def test_a_record_another_replayer_stored_meanwhile_is_dropped_once(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """The unique `record_id` is hit only because the record is stored: dropping it is right.
    (HEAD dropped it too, and every other refusal with it: this guards the right half.)"""
    spool = Spool(tmp_path / "spool.jsonl")
    record = failure(None, 1)
    await spool.append(record.to_json())

    stored_elsewhere = await replay_racing(
        database, database_url, spool, lambda s: write_task_record(s, record)
    )
    assert stored_elsewhere == 0
    assert await counts(database) == (1, 1)
    assert (spool.pending(), spool.quarantined()) == (0, 0)


async def test_compaction_never_truncates_the_quarantine(
    database: Database, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    recorder = TaskRecorder(database, spool)
    first, second = refused(), refused()
    await spool.append(first.to_json())
    assert await recorder.replay() == 0

    await spool.append(failure(None, 1).to_json())
    torn = torn_line(2)
    with spool.path.open("a", encoding="utf-8") as out:
        out.write(torn)  # a crash mid-append
    await spool.append(second.to_json())
    assert await recorder.replay() == 1
    await spool.append(failure(None, 3).to_json())
    assert await recorder.replay() == 1  # a rewrite with nothing to move aside

    lines = spool.quarantine_path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == torn
    assert [json.loads(lines[i])["record_id"] for i in (0, 2)] == [
        first.record_id,
        second.record_id,
    ]
    assert spool.quarantined() == 3
    assert await counts(database) == (2, 2)


async def test_an_outage_pauses_the_replay_and_moves_nothing_aside(
    backend: str, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Only a refusal goes aside: an unavailable database keeps every record waiting."""
    async with outage_of(backend, database_url, tmp_path, request) as broken:
        spool = Spool(tmp_path / "spool.jsonl")
        for n in range(2):
            await spool.append(failure(None, n).to_json())
        recorder = TaskRecorder(broken.database, spool)
        broken.down()
        await broken.database.engine.dispose()  # pooled connections went down with it
        assert await recorder.replay() == 0
        assert (spool.pending(), spool.quarantined()) == (2, 0)
        broken.up()
        assert await recorder.replay() == 2
        assert (spool.pending(), spool.quarantined()) == (0, 0)


async def test_the_api_shows_the_failures_after_a_refused_one(
    database: Database, make_service: ServiceFactory, tmp_path: Path
) -> None:
    """The auditor's case: `unresolved_failures` stayed 0 while the database was fine."""
    spool_path = tmp_path / "shared-spool.jsonl"
    async with make_service(spool_path=spool_path, spool_replay_seconds=0.02) as service:
        for record in (refused(), failure(None, 0), failure(None, 1)):
            await Spool(spool_path).append(record.to_json())

        async def unresolved() -> int:
            response = await service.admin_get("/api/admin/monitoring/background-failures")
            return int(response.json()["unresolved_failures"])

        async def spool_gauges() -> tuple[float, float]:
            metrics = (await service.client.get("/metrics")).text
            return (
                sample(metrics, "failure_spool_pending"),
                sample(metrics, "failure_spool_quarantined"),
            )

        assert await eventually(unresolved, "unresolved_failures", until=(2).__eq__) == 2
        # The rows are committed before the spool is compacted: the gauges follow.
        await eventually(spool_gauges, "pending 0, quarantined 1", until=(0, 1).__eq__)
