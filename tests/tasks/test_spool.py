"""The spool keeps every acknowledged record: torn lines cost only themselves, and spooled
records reach the database as soon as it answers again, with no other write to trigger it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from system.db.database import Database
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from tests.conftest import ServiceFactory
from tests.support.waiting import eventually
from tests.tasks.outages import outage_of
from tests.tasks.test_recording import counts, failure


def torn_line(n: int) -> str:
    """The first half of a real record's line, as a crash mid-append leaves it."""
    line = json.dumps(failure(None, n).to_json(), separators=(",", ":"))
    return line[: len(line) // 2]


async def test_an_append_after_a_torn_line_is_kept(tmp_path: Path, database_url: str) -> None:
    spool_path = tmp_path / "spool.jsonl"
    first, after = failure(None, 1), failure(None, 3)
    await Spool(spool_path).append(first.to_json())
    torn = torn_line(2)
    with spool_path.open("a", encoding="utf-8") as out:
        out.write(torn)  # the crash: no newline, the record never acknowledged

    spool = Spool(spool_path)
    await spool.append(after.to_json())
    assert [r["record_id"] for r in await spool.read()] == [first.record_id, after.record_id]
    assert spool.torn_lines == 1

    database = Database(database_url, connect_timeout=1)
    try:
        assert await TaskRecorder(database, spool).replay() == 2
        assert await counts(database) == (2, 2)
    finally:
        await database.close()
    assert spool.pending() == 0
    # The torn record is kept apart for inspection, not silently dropped.
    assert spool.quarantine_path.read_text(encoding="utf-8") == torn + "\n"


async def test_a_spool_holding_only_a_torn_line_empties(tmp_path: Path, database_url: str) -> None:
    """Nothing to store, but the torn line must not wait there (and count as pending) forever."""
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_text(torn_line(1), encoding="utf-8")
    database = Database(database_url, connect_timeout=1)
    try:
        assert await TaskRecorder(database, spool).replay() == 0
    finally:
        await database.close()
    assert spool.pending() == 0
    assert spool.quarantine_path.exists()


async def test_only_one_process_replays_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    with Spool(path).replaying() as first:
        with Spool(path).replaying() as second:
            assert (first, second) == (True, False)
    with Spool(path).replaying() as again:
        assert again


async def test_spooled_records_are_replayed_when_the_database_is_back(
    backend: str, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """No write after the outage: the replay loop alone brings the records in."""
    async with outage_of(backend, database_url, tmp_path, request) as broken:
        database = broken.database
        recorder = TaskRecorder(database, Spool(tmp_path / "spool.jsonl"), replay_seconds=0.02)
        recorder.start()
        try:
            broken.down()
            await database.engine.dispose()  # pooled connections went down with it
            for n in range(3):
                await recorder.record(failure(None, n))
            assert recorder.spool.pending() == 3
            broken.up()
            await eventually(lambda: counts(database), "the spooled records", until=(3, 3).__eq__)
            # The rows are committed before the spool is compacted: wait for that too.
            await eventually(recorder.spool.pending, "the spool emptied", until=(0).__eq__)
        finally:
            await recorder.aclose()


async def test_the_api_shows_spooled_failures_without_another_write(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """Records another worker spooled reach `unresolved_failures` with no write from here."""
    spool_path = tmp_path / "shared-spool.jsonl"
    async with make_service(spool_path=spool_path, spool_replay_seconds=0.02) as service:
        for n in range(2):
            await Spool(spool_path).append(failure(None, n).to_json())

        async def unresolved() -> int:
            response = await service.admin_get("/api/admin/monitoring/background-failures")
            return int(response.json()["unresolved_failures"])

        assert await eventually(unresolved, "unresolved_failures", until=(2).__eq__) == 2
