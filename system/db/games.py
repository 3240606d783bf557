"""Queries on the catalogue (the only place that knows its SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from system.bgg.models import BggGame
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


_SORT_COLUMNS: dict[str, Any] = {
    "title": BoardGame.title,
    "year": BoardGame.year_published,
    "rank": BoardGame.bgg_rank,
    "created": BoardGame.created_at,
}


#: Every column of a game, read as a plain row (no ORM object).
_READ = select(*BoardGame.__table__.columns)
#: Built once, values bound at execution: SQLAlchemy keys its compiled-SQL cache on the
#: statement, and a statement built per request pays for that key every time.
_READ_ONE = _READ.where(BoardGame.id == bindparam("game_id"))
_COUNT_ALL = select(func.count()).select_from(BoardGame)


def _ordered(query: Any, sort: GameSort) -> Any:
    column = _SORT_COLUMNS[sort.value.lstrip("-")]
    order = column.desc() if sort.value.startswith("-") else column.asc()
    return query.order_by(order.nulls_last(), BoardGame.id)


def _count(where: Any | None) -> Any:
    """The number of games matching `where` (all of them for None)."""
    return _COUNT_ALL if where is None else _COUNT_ALL.where(where)


def _page(where: Any | None, sort: GameSort) -> Any:
    """A page of games matching `where`, each row carrying the number of matches (`total`).

    The count is one more column, an uncorrelated scalar subquery both backends run once,
    so a page costs one round trip (on SQLite one worker-thread hop), not two, and its total
    comes from the same snapshot as its rows.
    """
    query = _READ.add_columns(_count(where).scalar_subquery().label("total"))
    if where is not None:
        query = query.where(where)
    return _ordered(query, sort).limit(bindparam("limit")).offset(bindparam("offset"))


#: A page of the whole catalogue in each order (no search), limit and offset bound.
_PAGES = {sort: _page(None, sort) for sort in GameSort}


@dataclass(frozen=True, slots=True)
class Upserted:
    """What an upsert did."""

    game: BoardGame
    created: bool
    #: No stored thumbnail yet, or the game's thumbnail URL changed.
    needs_thumbnail: bool


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT construct (both have `on_conflict_do_nothing`)."""
    bind = session.get_bind()
    return pg_insert if bind.dialect.name == "postgresql" else sqlite_insert


class GameRepository:
    """Reads and writes of `boardgames` through one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, game_id: int) -> BoardGame | None:
        """The game with that id, or None."""
        return await self.session.get(BoardGame, game_id)

    async def read(self, game_id: int) -> Row[Any] | None:
        """The game with that id as a plain row (every column, attribute access), or None.

        For answers that only show a game: no ORM object, identity map or change tracking
        is built for it (see `list`).
        """
        result = await self.session.execute(_READ_ONE, {"game_id": game_id})
        return result.first()

    async def get_by_bgg_id(self, bgg_id: int) -> BoardGame | None:
        """The game imported from that BGG id, or None."""
        result = await self.session.execute(select(BoardGame).where(BoardGame.bgg_id == bgg_id))
        return result.scalar_one_or_none()

    async def list(
        self, *, limit: int, offset: int, search: str | None, sort: GameSort
    ) -> tuple[Sequence[Row[Any]], int]:
        """One page of games (plain rows, as `read`) and the number of games matching
        `search`."""
        where = BoardGame.title.icontains(search, autoescape=True) if search else None
        page = _PAGES[sort] if where is None else _page(where, sort)
        result = await self.session.execute(page, {"limit": limit, "offset": offset})
        rows = result.all()
        if rows:
            return rows, int(rows[0].total)
        if offset == 0:
            return rows, 0
        # Past the last match: no row carries the count.
        return rows, int(await self.session.scalar(_count(where)) or 0)

    async def upsert_from_bgg(self, game: BggGame) -> Upserted:
        """Insert or update the game with `game.bgg_id`.

        Two imports of the same new game may race: the loser's insert hits the unique
        index, and it updates the winner's row instead.
        """
        values = {
            "title": game.title,
            "year_published": game.year_published,
            "min_players": game.min_players,
            "max_players": game.max_players,
            "playing_time": game.playing_time,
            "min_age": game.min_age,
            "description": game.description,
            "thumbnail_url": game.thumbnail_url,
            "image_url": game.image_url,
            "average_rating": game.average_rating,
            "bayes_average": game.bayes_average,
            "bgg_rank": game.bgg_rank,
            "categories": list(game.categories),
            "mechanics": list(game.mechanics),
            "designers": list(game.designers),
            "publishers": list(game.publishers),
            "is_expansion": game.is_expansion,
        }
        row = await self.get_by_bgg_id(game.bgg_id)
        created = row is None
        needs_thumbnail = (
            row is None or not row.thumbnail_path or (row.thumbnail_url != game.thumbnail_url)
        )
        if row is None:
            # INSERT ... ON CONFLICT DO NOTHING, not a savepoint around an INSERT: on SQLite
            # the driver opens its transaction only at a first write, so a savepoint taken
            # first began the transaction itself and its release committed the game, before
            # (and whatever became of) the thumbnail job written after it: no outbox.
            new_id = await self.session.scalar(
                _insert(self.session)(BoardGame)
                .values(bgg_id=game.bgg_id, **values)
                .on_conflict_do_nothing(index_elements=["bgg_id"])
                .returning(BoardGame.id)
            )
            if new_id is not None:
                row = await self.session.get(BoardGame, new_id)
            else:  # a concurrent import of the same new game won: update its row instead
                row = await self.get_by_bgg_id(game.bgg_id)
                created = False
            if row is None:
                raise RuntimeError(f"game {game.bgg_id} neither inserted nor found")
        if not created:
            for name, value in values.items():
                setattr(row, name, value)
        await self.session.flush()
        return Upserted(row, created, needs_thumbnail and game.thumbnail_url is not None)

    async def delete(self, game: BoardGame) -> str | None:
        """Remove a game; its failure and run rows keep their history with `game_id` NULL.

        Returns its thumbnail file, for the caller to remove once the delete is committed
        (never before: a delete that fails to commit must keep the game's file).
        """
        path = game.thumbnail_path
        await self.session.delete(game)
        return path

    async def set_thumbnail(self, game_id: int, url: str | None, path: str) -> bool:
        """Point the game at a downloaded thumbnail, only if it is still the game the
        download was started for: same id, same thumbnail URL. False when it is not (deleted,
        or re-imported with another URL): the download is superseded and nothing changes.
        """
        if url is None:
            return False
        result = await self.session.execute(
            update(BoardGame)
            .where(BoardGame.id == game_id, BoardGame.thumbnail_url == url)
            .values(thumbnail_path=path)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def thumbnail_in_use(self, path: str) -> bool:
        """Whether any game points at that thumbnail file."""
        return bool(
            await self.session.scalar(select(exists().where(BoardGame.thumbnail_path == path)))
        )
