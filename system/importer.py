"""Import a game from BGG into the catalogue, and schedule its thumbnail."""

from __future__ import annotations

import logging

from system.bgg.client import BggClient
from system.db.database import Database
from system.db.games import GameRepository
from system.db.models import BoardGame
from system.tasks.recording import TaskRecorder
from system.tasks.runner import TaskRunner
from system.tasks.thumbnails import ThumbnailDownloader, run_thumbnail_task

logger = logging.getLogger(__name__)


class GameImporter:
    """fetch (BGG, behind retries and the breaker) -> upsert (one transaction) -> thumbnail."""

    def __init__(
        self,
        *,
        bgg: BggClient,
        database: Database,
        runner: TaskRunner,
        downloader: ThumbnailDownloader,
        recorder: TaskRecorder,
    ) -> None:
        self.bgg = bgg
        self.database = database
        self.runner = runner
        self.downloader = downloader
        self.recorder = recorder

    async def import_game(self, bgg_id: int) -> tuple[BoardGame, bool]:
        """The stored game and whether it was created. Raises the BGG client's errors.

        Nothing is written unless BGG answered with the game, so a rejected or failed import
        leaves the database as it was.
        """
        fetched = await self.bgg.fetch_thing(bgg_id)
        async with self.database.session() as session:
            result = await GameRepository(session).upsert_from_bgg(fetched)
        # Scheduled after the commit: the task's failure row references the game.
        if result.needs_thumbnail and result.game.thumbnail_url:
            self.schedule_thumbnail(result.game.id, result.game.thumbnail_url)
        return result.game, result.created

    def schedule_thumbnail(
        self, game_id: int, url: str, *, failure_id: int | None = None, manual: bool = False
    ) -> None:
        """Download a game's thumbnail in the background."""
        self.runner.submit(
            run_thumbnail_task(
                self.downloader,
                self.recorder,
                game_id=game_id,
                url=url,
                trigger="manual_retry" if manual else "initial",
                failure_id=failure_id,
            ),
            name=f"thumbnail-{game_id}",
        )
