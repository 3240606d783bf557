"""Admin routes for the catalogue. Every route here requires an admin token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from system.api.auth import require_admin
from system.api.deps import SessionDep
from system.api.errors import ApiError
from system.api.public import MAX_DB_ID
from system.db.games import GameRepository

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
    """Delete a game; its recorded failures stay, with `game_id` set to NULL."""
    repository = GameRepository(session)
    game = await repository.get(game_id)
    if game is None:
        raise ApiError(404, f"Game {game_id} not found")
    await repository.delete(game)
    return Response(status_code=204)
