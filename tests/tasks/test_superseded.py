"""A download lands only on the game (id and URL) it was started for (issue 12, item 2).

Otherwise the run is `superseded`: nothing changes on any game, no failure row, and its file
is removed (unless a game still shows it). Deleting a game removes its thumbnail file once
the delete is committed, and game ids are never reused (SQLite `AUTOINCREMENT`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chaos.fakes import FaultRule
from system.clock import utcnow
from system.db.database import Database
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.db.tasks import TaskRecord
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from tests.conftest import ADMIN_TOKEN, ServiceFactory
from tests.fakes import Upstreams
from tests.support.waiting import eventually

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
URL = "https://cf.geekdo-images.com/a.jpg"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, connect_timeout=1)
    yield db
    await db.close()


async def add_game(database: Database, bgg_id: int, **values: object) -> int:
    async with database.session() as session:
        game = BoardGame(bgg_id=bgg_id, title=f"Game {bgg_id}", **values)
        session.add(game)
        await session.flush()
        return game.id


async def delete_game(database: Database, game_id: int) -> None:
    async with database.session() as session:
        game = await session.get(BoardGame, game_id)
        assert game is not None
        await session.delete(game)


async def game_row(database: Database, game_id: int) -> BoardGame | None:
    async with database.session() as session:
        return await session.get(BoardGame, game_id)


async def outcomes(database: Database) -> list[str]:
    async with database.session() as session:
        return sorted(await session.scalars(select(BackgroundTaskRun.outcome)))


async def failure_rows(database: Database) -> int:
    async with database.session() as session:
        count = select(func.count()).select_from(BackgroundTaskFailure)
        return (await session.execute(count)).scalar_one()


def downloaded(game_id: int, url: str, path: Path) -> TaskRecord:
    """A finished download's record, its file really on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    now = utcnow()
    return TaskRecord(
        task_type="thumbnail_download",
        game_id=game_id,
        outcome="success",
        attempts=1,
        started_at=now - timedelta(seconds=1),
        finished_at=now,
        url=url,
        thumbnail_path=str(path),
    )


async def test_ids_of_deleted_games_are_never_reused(database: Database) -> None:
    first = await add_game(database, 1)
    await delete_game(database, first)
    assert await add_game(database, 2) > first


async def test_a_download_for_a_deleted_game_is_superseded(
    database: Database, tmp_path: Path
) -> None:
    game_id = await add_game(database, 1, thumbnail_url=URL)
    record = downloaded(game_id, URL, tmp_path / "thumbs" / f"{game_id}-a.png")
    await delete_game(database, game_id)
    other = await add_game(database, 2, thumbnail_url=URL)  # same URL: only the id differs

    await TaskRecorder(database, Spool(tmp_path / "spool.jsonl")).record(record)

    assert await outcomes(database) == ["superseded"]
    assert await failure_rows(database) == 0
    game = await game_row(database, other)
    assert game is not None and game.thumbnail_path is None
    assert not Path(str(record.thumbnail_path)).exists()


async def test_a_download_of_a_replaced_url_is_superseded(
    database: Database, tmp_path: Path
) -> None:
    game_id = await add_game(database, 1, thumbnail_url=URL)
    stale = downloaded(game_id, URL, tmp_path / f"{game_id}-old.png")
    current_url = "https://cf.geekdo-images.com/b.jpg"
    current = downloaded(game_id, current_url, tmp_path / f"{game_id}-new.png")
    async with database.session() as session:
        game = await session.get(BoardGame, game_id)
        assert game is not None
        game.thumbnail_url = current_url  # re-imported with another image meanwhile

    recorder = TaskRecorder(database, Spool(tmp_path / "spool.jsonl"))
    await recorder.record(current)
    await recorder.record(stale)

    assert await outcomes(database) == ["success", "superseded"]
    game = await game_row(database, game_id)
    assert game is not None and game.thumbnail_path == current.thumbnail_path
    assert Path(str(current.thumbnail_path)).exists()
    assert not Path(str(stale.thumbnail_path)).exists()


async def test_a_superseded_download_keeps_a_file_a_game_still_shows(
    database: Database, tmp_path: Path
) -> None:
    """The URL changed, its new image has not arrived: the old one is still on show."""
    shown = tmp_path / "1-old.png"
    game_id = await add_game(
        database, 1, thumbnail_url="https://cf.geekdo-images.com/b.jpg", thumbnail_path=str(shown)
    )
    late_retry = downloaded(game_id, URL, shown)
    await TaskRecorder(database, Spool(tmp_path / "spool.jsonl")).record(late_retry)
    assert await outcomes(database) == ["superseded"]
    assert shown.exists()


async def test_a_late_download_never_lands_on_the_next_game(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """The issue's reproduction: import A (slow image), delete A, import B, A's image
    arrives. B keeps its own image; A's run is superseded and its file removed."""
    upstreams.cdn_app.engine.set_rules([FaultRule(hang=True, first_n=1)])
    async with make_service() as service:
        database = service.services.database
        a = (await service.import_game(28720)).json()
        await eventually(upstreams.image_requests, "A's download to start")
        deleted = await service.client.delete(f"/api/admin/games/{a['id']}", headers=AUTH)
        assert deleted.status_code == 204
        b = (await service.import_game(13)).json()

        async def b_thumbnail() -> str | None:
            game = await game_row(database, b["id"])
            return None if game is None else game.thumbnail_path

        b_path = await eventually(b_thumbnail, "B's own thumbnail")
        assert b_path is not None
        upstreams.cdn_app.engine.clear()  # A's download goes on now
        await eventually(lambda: outcomes(database), "A's run", until=lambda o: len(o) == 2)

        assert await b_thumbnail() == b_path
        assert await outcomes(database) == ["success", "superseded"]
        assert await failure_rows(database) == 0
        files = sorted(p.name for p in service.settings.thumbnail_dir.iterdir())
        assert files == [Path(b_path).name]
        assert b["id"] != a["id"]


async def test_deleting_a_game_removes_its_thumbnail(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service() as service:
        game = (await service.import_game(28720)).json()

        async def thumbnail() -> str | None:
            row = await game_row(service.services.database, game["id"])
            return None if row is None else row.thumbnail_path

        thumbnail_path = await eventually(thumbnail, "the thumbnail")
        assert thumbnail_path is not None
        path = Path(thumbnail_path)
        assert path.exists()
        deleted = await service.client.delete(f"/api/admin/games/{game['id']}", headers=AUTH)
        assert deleted.status_code == 204
        assert not path.exists()
