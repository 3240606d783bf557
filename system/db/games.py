"""Queries on the catalogue (the only place that knows its SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from system.db.models import BoardGame


class GameSort(StrEnum):
    """Orderings of the catalogue; a leading `-` means descending."""

    TITLE = "title"
    TITLE_DESC = "-title"
    YEAR = "year"
    YEAR_DESC = "-year"
    RANK = "rank"
    RANK_DESC = "-rank"
    CREATED = "created"
    CREATED_DESC = "-created"


_SORT_COLUMNS = {
    "title": BoardGame.title,
    "year": BoardGame.year_published,
    "rank": BoardGame.bgg_rank,
    "created": BoardGame.created_at,
}


class GameRepository:
    """Reads and writes of `boardgames` through one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, game_id: int) -> BoardGame | None:
        """The game with that id, or None."""
        return await self.session.get(BoardGame, game_id)

    async def get_by_bgg_id(self, bgg_id: int) -> BoardGame | None:
        """The game imported from that BGG id, or None."""
        result = await self.session.execute(select(BoardGame).where(BoardGame.bgg_id == bgg_id))
        return result.scalar_one_or_none()

    async def list(
        self, *, limit: int, offset: int, search: str | None, sort: GameSort
    ) -> tuple[Sequence[BoardGame], int]:
        """One page of games and the number of games matching `search`."""
        query = select(BoardGame)
        if search:
            query = query.where(BoardGame.title.icontains(search, autoescape=True))
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        column = _SORT_COLUMNS[sort.value.lstrip("-")]
        order = column.desc() if sort.value.startswith("-") else column.asc()
        rows = await self.session.scalars(
            query.order_by(order.nulls_last(), BoardGame.id).limit(limit).offset(offset)
        )
        return rows.all(), int(total or 0)

    async def delete(self, game: BoardGame) -> None:
        """Remove a game; its failure and run rows keep their history with `game_id` NULL."""
        await self.session.delete(game)
