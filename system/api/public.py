"""The public catalogue: anyone may read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from system.api.deps import ReadSessionDep
from system.api.errors import ApiError
from system.api.schemas import Game, GamePage, QueryText
from system.db.games import GameRepository, GameSort

router = APIRouter(prefix="/api/public", tags=["public"])

MAX_PAGE_SIZE = 100
MAX_OFFSET = 1_000_000
MAX_DB_ID = 2**31 - 1


@router.get("/games", summary="List and search the catalogue.")
async def list_games(
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Games to skip.")] = 0,
    q: Annotated[
        QueryText | None,
        Query(min_length=1, max_length=200, description="Title contains (any case)."),
    ] = None,
    sort: Annotated[GameSort, Query(description="Order; `-` for descending.")] = GameSort.TITLE,
) -> GamePage:
    """A page of games, `total` counting every game that matches `q`."""
    games, total = await GameRepository(session).list(
        limit=limit, offset=offset, search=q, sort=sort
    )
    return GamePage(
        items=[Game.model_validate(g) for g in games], total=total, limit=limit, offset=offset
    )


@router.get(
    "/games/{game_id}",
    summary="One game.",
    responses={404: {"description": "No game with that id."}},
)
async def get_game(
    session: ReadSessionDep, game_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)]
) -> Game:
    """The game with that catalogue id (not the BGG id)."""
    game = await GameRepository(session).read(game_id)
    if game is None:
        raise ApiError(404, f"Game {game_id} not found")
    return Game.model_validate(game)
