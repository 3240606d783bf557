"""Admin routes for the catalogue. Every route here requires an admin token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from system.api.auth import require_admin
from system.api.deps import ServicesDep, SessionDep
from system.api.errors import ApiError
from system.api.public import MAX_DB_ID
from system.api.schemas import Game
from system.db.games import GameRepository
from system.tasks.files import remove_thumbnail

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.delete(
    "/games/{game_id}",
    status_code=204,
    summary="Remove a game from the catalogue.",
    responses={404: {"description": "No game with that id."}},
)
async def delete_game(
    session: SessionDep, game_id: Annotated[int, Path(ge=1, le=MAX_DB_ID)]
) -> Response:
    """Delete a game and its thumbnail file; its recorded failures stay, with `game_id` set
    to NULL."""
    repository = GameRepository(session)
    game = await repository.get(game_id)
    if game is None:
        raise ApiError(404, f"Game {game_id} not found")
    thumbnail = await repository.delete(game)
    # A response's background task runs only once the response is sent, which is after the
    # session's commit (SessionDep); a delete that fails to commit never sends this response,
    # so its file stays.
    background = None if thumbnail is None else BackgroundTask(remove_thumbnail, thumbnail)
    return Response(status_code=204, background=background)


_ERROR = {"description": "The shared error shape (see README)."}


@router.post(
    "/games/import/{bgg_id}",
    summary="Import (or refresh) a game from BoardGameGeek.",
    status_code=201,
    response_model=Game,
    responses={
        200: {"description": "The game existed and was updated.", "model": Game},
        201: {"description": "The game was created."},
        404: {"description": "BGG has no such game.", **_ERROR},
        422: {"description": "bgg_id out of range, or BGG rejected the request.", **_ERROR},
        502: {"description": "BGG failed (bad answer, auth) after retries.", **_ERROR},
        503: {
            "description": "The BGG circuit breaker is open: no call was made. "
            "`Retry-After` says when a trial request will be let through.",
            **_ERROR,
        },
        504: {"description": "BGG did not answer within the deadline.", **_ERROR},
    },
)
async def import_game(services: ServicesDep, bgg_id: Annotated[int, Path()]) -> JSONResponse:
    """Fetch `bgg_id` from BGG (retries and circuit breaker), upsert it by `bgg_id`, and
    download its thumbnail in the background. 201 when created, 200 when updated."""
    max_id = services.settings.bgg_max_id
    if not 1 <= bgg_id <= max_id:
        raise ApiError(
            422,
            f"Invalid request: bgg_id: must be between 1 and {max_id}",
            fields=[{"field": "bgg_id", "location": "path", "message": f"must be 1-{max_id}"}],
        )
    game, created = await services.importer.import_game(bgg_id)
    return JSONResponse(
        Game.model_validate(game).model_dump(mode="json"), status_code=201 if created else 200
    )
