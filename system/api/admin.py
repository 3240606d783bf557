"""Admin routes for the catalogue. Every route here requires an admin token."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send

from system.api.auth import refusal, require_admin
from system.api.deps import ServicesDep, SessionDep
from system.api.errors import ApiError, handler_for
from system.api.public import MAX_DB_ID
from system.api.schemas import BulkImportAccepted, BulkImportJob, BulkImportRequest, Game
from system.container import Services
from system.db.games import GameRepository
from system.db.models import BackgroundJob
from system.resilience.store import OPEN
from system.tasks.files import remove_thumbnail
from system.tasks.imports import enqueue_imports

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
    return await _import(services, bgg_id)


async def _import(services: Services, bgg_id: int) -> JSONResponse:
    game, created = await services.importer.import_game(bgg_id)
    return JSONResponse(
        Game.model_validate(game).model_dump(mode="json"), status_code=201 if created else 200
    )


_IMPORT_PATH = re.compile(r"/api/admin/games/import/([0-9]{1,10})")


class ImportWhileOpen:
    """ASGI middleware: an import while the BGG breaker is open skips FastAPI's routing,
    dependency solving and exception unwinding, which cost twice what the answer does.

    It takes only an authorised `POST /api/admin/games/import/{bgg_id}` with an id in range,
    while this process last saw the BGG breaker open, and runs the route's own code on it
    (`_import`, whose BGG client rejects at once) with the app's own exception handlers: the
    same answer, metrics (under the route's template), Sentry report and alert window. The
    auth check is `require_admin`'s (no token, a bad one or disabled admin access: the
    request goes the ordinary way, to its 401): `refusal`, the rule `require_admin` applies.
    Everything else goes the ordinary way too.
    Install it inside the metrics and `UnexpectedErrors` middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer an import the open breaker rejects; pass everything else on."""
        match = (
            _IMPORT_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        fastapi_app: FastAPI = scope["app"]
        services: Services | None = getattr(fastapi_app.state, "services", None)
        if (
            services is None  # before the lifespan built them
            or services.bgg_breaker.last_known_state != OPEN
            or not 1 <= int(match[1]) <= services.settings.bgg_max_id
            or refusal(fastapi_app.state.admin_tokens, _authorization(scope)) is not None
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = _IMPORT_ROUTE
        request = Request(scope, receive)
        try:
            response: Response = await _import(services, int(match[1]))
        except Exception as exc:
            handler = handler_for(fastapi_app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


#: The import route, as the metrics name it (`scope["route"]`).
_IMPORT_ROUTE = next(
    r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is import_game
)


def _authorization(scope: Scope) -> str | None:
    """The first `Authorization` header, as Starlette's `request.headers.get` finds it,
    without building a `Request`."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            decoded: str = value.decode("latin-1")
            return decoded
    return None


#: A bad bulk list names at most this many items (a list of 500 strings is one answer, not
#: 500 lines of it).
MAX_FIELD_ERRORS = 20


def _bulk_invalid(fields: list[dict[str, str]]) -> ApiError:
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return ApiError(422, f"Invalid request: {summary}", fields=fields)


def check_bulk_ids(values: list[Any], *, max_ids: int, max_id: int) -> list[int]:
    """The distinct ids of a bulk import body, in request order; `ApiError` 422 naming
    `bgg_ids` (the list) or `bgg_ids[i]` (an item) when the list is not acceptable.

    Items must be JSON integers: no booleans (`true` is an int to Python), no strings
    (`"12"`), no floats (`12.0`)."""
    if not 1 <= len(values) <= max_ids:
        message = f"must hold 1 to {max_ids} ids (BULK_IMPORT_MAX), not {len(values)}"
        raise _bulk_invalid([{"field": "bgg_ids", "location": "body", "message": message}])
    fields = []
    for index, value in enumerate(values):
        if type(value) is not int or not 1 <= value <= max_id:
            fields.append(
                {
                    "field": f"bgg_ids[{index}]",
                    "location": "body",
                    "message": f"must be an integer between 1 and {max_id}",
                }
            )
            if len(fields) == MAX_FIELD_ERRORS:
                break
    if fields:
        raise _bulk_invalid(fields)
    return list(dict.fromkeys(values))


@router.post(
    "/games/import",
    summary="Import many games from BoardGameGeek in the background.",
    status_code=202,
    response_model=BulkImportAccepted,
    description=(
        "Queues one `bgg_import` job per distinct id, all in one transaction (all or "
        "nothing), and answers 202 with the jobs in request order. The body holds 1 to "
        "`BULK_IMPORT_MAX` (default 500) ids, each a JSON integer in 1..`BGG_MAX_ID`; "
        "anything else is a 422 naming `bgg_ids` or the item (`bgg_ids[3]`). A repeated id "
        "is one job; an id already queued or running returns that job (`existing: true`). "
        "Each job fetches with the single import's client (retries, deadline, breaker); while "
        "the BGG breaker is open the jobs wait instead of failing. A job that fails leaves a "
        "`bgg_import` failure row. Follow them on `GET /api/admin/monitoring/jobs`."
    ),
    responses={
        422: {
            "description": "Empty, too long, or an id that is not an integer in range.",
            **_ERROR,
        },
        503: {
            "description": "The database is unavailable: nothing was queued; see `Retry-After`.",
            **_ERROR,
        },
    },
)
async def bulk_import(services: ServicesDep, body: BulkImportRequest) -> JSONResponse:
    """Queue `bgg_import` jobs for `bgg_ids`; the local workers are woken after the commit."""
    settings = services.settings
    ids = check_bulk_ids(body.bgg_ids, max_ids=settings.bulk_import_max, max_id=settings.bgg_max_id)
    async with services.database.session() as session:
        queued = await enqueue_imports(session, ids, max_attempts=settings.job_max_attempts)
        found = [job.id for job in queued if job.existing]
        statuses: dict[int, str] = {}
        if found:
            rows = await session.execute(
                select(BackgroundJob.id, BackgroundJob.status).where(BackgroundJob.id.in_(found))
            )
            statuses = {row.id: row.status for row in rows}
    services.pool.wake()
    answer = BulkImportAccepted(
        jobs=[
            BulkImportJob(
                bgg_id=bgg_id,
                job_id=job.id,
                status=statuses.get(job.id, "queued"),
                existing=job.existing,
            )
            for bgg_id, job in zip(ids, queued, strict=True)
        ],
        count=len(ids),
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=202)
