"""Import a game from BGG into the catalogue, with its thumbnail job in the same commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from system.bgg.client import BggClient
from system.bgg.models import BggGame
from system.db.database import Database
from system.db.games import GameRepository
from system.db.models import BoardGame
from system.tasks.thumbnails import enqueue_thumbnail

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    """What `GameImporter.store` wrote in the caller's transaction."""

    game: BoardGame
    created: bool
    #: Whether a thumbnail job was queued (new or found live by its dedupe key).
    queued: bool


class GameImporter:
    """fetch (BGG, behind retries and the breaker) -> upsert + thumbnail job (one commit).

    The single import (`import_game`, synchronous) and the `bgg_import` job
    (`system/tasks/imports.py`, whose commit also finishes the job) both write through
    `store`: one way to turn BGG's answer into a game and its thumbnail job.
    """

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

    async def store(self, session: AsyncSession, fetched: BggGame) -> Stored:
        """Upsert `fetched` by `bgg_id` and queue its thumbnail job, in the caller's
        transaction (the outbox: a committed game always has its job, a failed commit leaves
        neither). Twice is harmless: one game, and the dedupe key keeps one live job."""
        result = await GameRepository(session).upsert_from_bgg(fetched)
        queued = False
        if result.needs_thumbnail and result.game.thumbnail_url:
            await enqueue_thumbnail(
                session,
                result.game.id,
                result.game.thumbnail_url,
                max_attempts=self.job_max_attempts,
            )
            queued = True
        return Stored(result.game, result.created, queued)

    async def import_game(self, bgg_id: int) -> tuple[BoardGame, bool]:
        """The stored game and whether it was created. Raises the BGG client's errors.

        Nothing is written unless BGG answered with the game, so a rejected or failed import
        leaves the database as it was.
        """
        fetched = await self.bgg.fetch_thing(bgg_id)
        async with self.database.session() as session:
            stored = await self.store(session, fetched)
        if stored.queued:
            self.on_enqueued()
        return stored.game, stored.created
