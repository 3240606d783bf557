"""The public catalogue: anyone may read it.

Both reads carry validators and `Cache-Control` and answer conditional requests with a 304
(see `system/api/caching.py`); HEAD is served as GET without the body. Each first reads the
catalogue version (shared with the requests around it) and reads the games only when this
worker has no representation of that version: a session is opened only then.

The routes take what they need from `request.app.state` rather than as dependencies: each
dependency FastAPI resolves costs more than the cached answer itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from system.api import caching
from system.api.errors import ApiError
from system.api.schemas import Game, GamePage, QueryText
from system.config import Settings
from system.db.database import Database
from system.db.games import GameRepository, GameSort

router = APIRouter(prefix="/api/public", tags=["public"])

MAX_PAGE_SIZE = 100
MAX_OFFSET = 1_000_000
MAX_DB_ID = 2**31 - 1

_CONDITIONAL: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: `If-None-Match` or `If-Modified-Since` matched."}
}


# HEAD as GET (FastAPI adds no HEAD route by itself), left out of the schema.
@router.head("/games", include_in_schema=False)
@router.get(
    "/games",
    response_model=GamePage,
    summary="List and search the catalogue.",
    responses=_CONDITIONAL,
)
async def list_games(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Games to skip.")] = 0,
    q: Annotated[
        QueryText | None,
        Query(min_length=1, max_length=200, description="Title contains (any case)."),
    ] = None,
    sort: Annotated[GameSort, Query(description="Order; `-` for descending.")] = GameSort.TITLE,
) -> Response:
    """A page of games, `total` counting every game that matches `q`."""
    database, cache, settings = _reads(request)
    version = await database.catalogue_version.current()
    key = ("page", limit, offset, sort, q)
    representation = cache.get(key, version)
    if representation is None:
        async with database.read_session() as session:
            games, total = await GameRepository(session).list(
                limit=limit, offset=offset, search=q, sort=sort
            )
        page = GamePage(
            items=[Game.model_validate(g) for g in games], total=total, limit=limit, offset=offset
        )
        validators = caching.for_page(games, total=total, limit=limit, offset=offset)
        representation = cache.put(
            key, caching.Representation(version, caching.render(page), validators.opaque)
        )
    return caching.respond(request, representation, max_age=settings.public_cache_max_age)


@router.head("/games/{game_id}", include_in_schema=False)
@router.get(
    "/games/{game_id}",
    response_model=Game,
    summary="One game.",
    responses={404: {"description": "No game with that id."}, **_CONDITIONAL},
)
async def get_game(
    request: Request,
    game_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)],
) -> Response:
    """The game with that catalogue id (not the BGG id)."""
    database, cache, settings = _reads(request)
    version = await database.catalogue_version.current()
    key = ("game", game_id)
    representation = cache.get(key, version)
    if representation is None:
        async with database.read_session() as session:
            game = await GameRepository(session).read(game_id)
        if game is None:
            raise ApiError(404, f"Game {game_id} not found")
        representation = cache.put(
            key,
            caching.Representation(
                version,
                caching.render(Game.model_validate(game)),
                caching.game_tag(game),
                game.updated_at,
            ),
        )
    return caching.respond(request, representation, max_age=settings.public_cache_max_age)


def _reads(request: Request) -> tuple[Database, caching.RepresentationCache, Settings]:
    state = request.app.state
    return state.services.database, state.read_cache, state.settings
