"""Import a game from BGG into the catalogue, with its thumbnail job in the same commit."""

from __future__ import annotations

import logging
from collections.abc import Callable

from system.bgg.client import BggClient
from system.db.database import Database
from system.db.games import GameRepository
from system.db.models import BoardGame
from system.tasks.thumbnails import enqueue_thumbnail

logger = logging.getLogger(__name__)


class GameImporter:
    """fetch (BGG, behind retries and the breaker) -> upsert + thumbnail job (one commit)."""

    def __init__(
        self,
        *,
        bgg: BggClient,
        database: Database,
        job_max_attempts: int,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self.bgg = bgg
        self.database = database
        self.job_max_attempts = job_max_attempts
        #: Called after a commit that queued a job (wakes this process's workers).
        self.on_enqueued = on_enqueued

    async def import_game(self, bgg_id: int) -> tuple[BoardGame, bool]:
        """The stored game and whether it was created. Raises the BGG client's errors.

        Nothing is written unless BGG answered with the game, so a rejected or failed import
        leaves the database as it was. The thumbnail job is written in the game's transaction
        (the outbox): a committed game always has its job, and a failed commit leaves neither.
        """
        fetched = await self.bgg.fetch_thing(bgg_id)
        queued = False
        async with self.database.session() as session:
            result = await GameRepository(session).upsert_from_bgg(fetched)
            if result.needs_thumbnail and result.game.thumbnail_url:
                await enqueue_thumbnail(
                    session,
                    result.game.id,
                    result.game.thumbnail_url,
                    max_attempts=self.job_max_attempts,
                )
                queued = True
        if queued:
            self.on_enqueued()
        return result.game, result.created
