"""The public catalogue: anyone may read it.

Both reads carry validators and `Cache-Control` and answer conditional requests with a 304
(see `system/api/caching.py`); HEAD is served as GET without the body. Each first reads the
catalogue version (`system/db/catalogue.py`) and reads the games only when this worker has
no representation of that version: a session is opened only then. A request this worker
has answered at the current version is answered by `CachedReads` before reaching a route.

The routes take what they need from `request.app.state` rather than as dependencies: each
dependency FastAPI resolves costs more than the cached answer itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from system.api import caching
from system.api.errors import ApiError, handler_for
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
    version, key = await _version_and_key(request, database)
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
    version, key = await _version_and_key(request, database)
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


#: Where `CachedReads` leaves the version it read for the route (a miss): read before the rows.
_VERSION = "bgg.catalogue_version"


def _key(scope: Scope) -> tuple[str, bytes]:
    """A representation's cache key: the raw path and query. The same bytes always pass the
    same validation to the same answer, so a hit needs no parsing at all."""
    return scope["path"], scope["query_string"]


async def _version_and_key(request: Request, database: Database) -> tuple[int, tuple[str, bytes]]:
    version = request.scope.get(_VERSION)
    if version is None:
        version = await database.catalogue_version.current()
    return version, _key(request.scope)


_LIST_ROUTE, _GAME_ROUTE = (
    next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)
    for endpoint in (list_games, get_game)
)


class CachedReads:
    """ASGI middleware: a public read this worker has rendered at the current catalogue
    version is answered from memory (a 304 or the stored body) without FastAPI's routing,
    parameter validation and dependencies, which cost more than the answer.

    Only requests whose exact path and query the route stored are taken (`_key`): the
    route validated those very bytes, so errors (404, 422) and anything new go the ordinary
    way, as does a stored answer of an older version (with the version this read, so the
    route reads its rows after it). The route template is set for the metrics, and a
    database fault on the version read gets the app's own handler (503 + `Retry-After`).
    Install it inside the metrics and `UnexpectedErrors` middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a read stored at the current version; pass everything else on."""
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not scope["path"].startswith(_LIST_ROUTE.path)
        ):
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        services = getattr(app.state, "services", None)
        cache: caching.RepresentationCache = app.state.read_cache
        key = _key(scope)
        if services is None or not cache.holds(key):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            version = await services.database.catalogue_version.current()
        except Exception as exc:
            handler = handler_for(app, exc)
            if handler is None:
                raise
            scope["route"] = _LIST_ROUTE if scope["path"] == _LIST_ROUTE.path else _GAME_ROUTE
            await (await handler(request, exc))(scope, receive, send)
            return
        representation = cache.get(key, version)
        if representation is None:
            scope[_VERSION] = version
            await self.app(scope, receive, send)
            return
        scope["route"] = _LIST_ROUTE if scope["path"] == _LIST_ROUTE.path else _GAME_ROUTE
        max_age = app.state.settings.public_cache_max_age
        await caching.respond(request, representation, max_age=max_age)(scope, receive, send)
