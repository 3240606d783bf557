"""Deleting a game keeps its failure history, with `game_id` set to NULL (both backends)."""

from __future__ import annotations

from sqlalchemy import select

from system.clock import utcnow
from system.db.database import Database
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame


async def test_deleting_a_game_sets_failure_game_id_to_null(database_url: str) -> None:
    database = Database(database_url)
    try:
        async with database.session() as session:
            game = BoardGame(bgg_id=28720, title="Brass: Lancashire")
            session.add(game)
            await session.flush()
            failure = BackgroundTaskFailure(
                task_type="thumbnail_download", game_id=game.id, error_message="timeout"
            )
            session.add(failure)
            await session.flush()
            now = utcnow()
            session.add(
                BackgroundTaskRun(
                    record_id="00000000-0000-0000-0000-000000000001",
                    task_type="thumbnail_download",
                    game_id=game.id,
                    failure_id=failure.id,
                    outcome="failure",
                    attempts=3,
                    started_at=now,
                    finished_at=now,
                    duration_ms=1.0,
                )
            )
            failure_id = failure.id

        async with database.session() as session:
            await session.delete(await session.get(BoardGame, game.id))

        async with database.session() as session:
            kept = await session.get(BackgroundTaskFailure, failure_id)
            assert kept is not None, "the failure row must survive the game"
            assert kept.game_id is None
            assert kept.retry_count == 0 and kept.resolved is False
            assert kept.created_at is not None and kept.created_at.tzinfo is not None
            run = (await session.scalars(select(BackgroundTaskRun))).one()
            assert run.game_id is None and run.failure_id == failure_id
    finally:
        await database.close()
