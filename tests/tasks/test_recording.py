"""Failure recording survives a database outage: spooled, replayed exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chaos.proxy import ProxyServer
from system.clock import utcnow
from system.db.database import Database
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.db.tasks import TaskRecord
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from tests.tasks.outages import postgres_outage


def failure(game_id: int | None, n: int) -> TaskRecord:
    now = utcnow()
    return TaskRecord(
        task_type="thumbnail_download",
        game_id=game_id,
        outcome="failure",
        attempts=3,
        started_at=now - timedelta(seconds=1),
        finished_at=now,
        url=f"https://cf.geekdo-images.com/{n}.jpg",
        error_message="Network error: ReadTimeout",
        error_type="ReadTimeout",
    )


async def counts(database: Database) -> tuple[int, int]:
    async with database.session() as session:
        failures = await session.scalar(select(func.count()).select_from(BackgroundTaskFailure))
        runs = await session.scalar(select(func.count()).select_from(BackgroundTaskRun))
    return int(failures or 0), int(runs or 0)


async def make_game(database: Database) -> int:
    async with database.session() as session:
        game = BoardGame(bgg_id=28720, title="Brass")
        session.add(game)
        await session.flush()
        return game.id


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, connect_timeout=1)
    yield db
    await db.close()


async def test_records_go_to_the_database(database: Database, tmp_path: Path) -> None:
    recorder = TaskRecorder(database, Spool(tmp_path / "spool.jsonl"))
    game_id = await make_game(database)
    await recorder.record(failure(game_id, 1))
    assert await counts(database) == (1, 1)
    assert recorder.spool.pending() == 0


async def test_a_failing_metrics_hook_does_not_cost_the_record(
    database: Database, tmp_path: Path
) -> None:
    def broken(_record: TaskRecord) -> None:
        raise RuntimeError("metrics bug")

    recorder = TaskRecorder(database, Spool(tmp_path / "spool.jsonl"), on_record=broken)
    game_id = await make_game(database)
    await recorder.record(failure(game_id, 1))
    assert await counts(database) == (1, 1)


async def test_replaying_a_record_already_stored_does_not_double_it(
    database: Database, tmp_path: Path
) -> None:
    """A crash between the commit and the spool compaction leaves a stored record spooled."""
    spool = Spool(tmp_path / "spool.jsonl")
    recorder = TaskRecorder(database, spool)
    record = failure(None, 1)
    await recorder.record(record)
    await spool.append(record.to_json())
    assert await recorder.replay() == 0
    assert await counts(database) == (1, 1)
    assert spool.pending() == 0


async def test_two_workers_replaying_one_spool_store_each_record_once(
    database: Database, tmp_path: Path
) -> None:
    spool_path = tmp_path / "spool.jsonl"
    for n in range(20):
        await Spool(spool_path).append(failure(None, n).to_json())
    a = TaskRecorder(database, Spool(spool_path))
    b = TaskRecorder(database, Spool(spool_path))
    await asyncio.gather(a.replay(), b.replay())
    assert await counts(database) == (20, 20)
    assert Spool(spool_path).pending() == 0


async def test_a_torn_last_line_is_skipped(database: Database, tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.jsonl"
    await Spool(spool_path).append(failure(None, 1).to_json())
    with spool_path.open("a") as out:
        out.write('{"record_id": "torn", "task_ty')
    assert await TaskRecorder(database, Spool(spool_path)).replay() == 1
    assert await counts(database) == (1, 1)


async def test_failure_recording_off_drops_failures(database: Database, tmp_path: Path) -> None:
    recorder = TaskRecorder(database, Spool(tmp_path / "s.jsonl"), record_failures=False)
    await recorder.record(failure(None, 1))
    assert await counts(database) == (0, 0)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_postgres_outage_spools_then_replays_exactly_once(
    database_url: str, proxies: ProxyServer, tmp_path: Path
) -> None:
    """The database sits behind the TCP fault proxy; taking the proxy down is the outage."""
    async with postgres_outage(database_url, proxies) as outage:
        database = outage.database
        recorder = TaskRecorder(database, Spool(tmp_path / "spool.jsonl"))
        game_id = await make_game(database)
        await recorder.record(failure(game_id, 0))

        outage.down()
        await database.engine.dispose()  # pooled connections went down with the network
        for n in range(1, 6):
            await recorder.record(failure(game_id, n))  # never raises
        assert recorder.spool.pending() == 5
        lines = [json.loads(x) for x in (tmp_path / "spool.jsonl").read_text().splitlines()]
        assert {x["game_id"] for x in lines} == {game_id}

        outage.up()
        await recorder.record(failure(game_id, 6))  # the next write replays the spool
        assert recorder.spool.pending() == 0
        assert await counts(database) == (7, 7)
        async with database.session() as session:
            urls = list(await session.scalars(select(BackgroundTaskFailure.url)))
        # A Counter, not sorted(): a url may be None, as far as the types know.
        assert Counter(urls) == Counter(f"https://cf.geekdo-images.com/{n}.jpg" for n in range(7))
        assert await recorder.replay() == 0
        assert await counts(database) == (7, 7)


async def test_sqlite_outage_spools_then_replays_at_start_up(
    tmp_path: Path,
) -> None:
    """The SQLite file's folder disappears (a lost volume), then comes back."""
    from system.db import migrate

    folder = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{folder / 'bgg.db'}"
    database = Database(url, connect_timeout=1)
    await migrate.upgrade(database.engine)
    spool = Spool(tmp_path / "spool.jsonl")
    recorder = TaskRecorder(database, spool)
    await database.engine.dispose()
    folder.rename(tmp_path / "away")
    for n in range(3):
        await recorder.record(failure(None, n))
    await database.close()
    assert spool.pending() == 3

    (tmp_path / "away").rename(folder)
    restarted = Database(url, connect_timeout=1)
    try:
        assert await TaskRecorder(restarted, Spool(tmp_path / "spool.jsonl")).replay() == 3
        assert await counts(restarted) == (3, 3)
    finally:
        await restarted.close()


async def test_the_app_replays_the_spool_at_start_up(settings: object, tmp_path: Path) -> None:
    import httpx

    from system.app import create_app
    from tests.conftest import make_settings

    spool_path = tmp_path / "spooled.jsonl"
    for n in range(4):
        await Spool(spool_path).append(failure(None, n).to_json())
    local = make_settings(
        database_url=settings.database_url,  # type: ignore[attr-defined]
        spool_path=spool_path,
    )
    app = create_app(local)
    async with app.router.lifespan_context(app):
        assert await counts(app.state.services.database) == (4, 4)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health/ready")).status_code == 200
    assert Spool(spool_path).pending() == 0
