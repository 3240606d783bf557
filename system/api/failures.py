"""Admin monitoring of background task failures: list, resolve, retry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path, Query, Response

from system.api.auth import require_admin
from system.api.deps import ServicesDep, SessionDep
from system.api.errors import DATABASE_RETRY_AFTER, ApiError
from system.api.paging import decode_cursor, encode_cursor
from system.api.public import MAX_DB_ID
from system.api.schemas import ActionResult, FailureList, FailureOut, QueryText
from system.clock import utcnow
from system.db.failures import FailureFilter, FailureRepository
from system.db.models import BackgroundTaskFailure
from system.tasks.classification import classify
from system.tasks.recovery import NotRetryable

router = APIRouter(
    prefix="/api/admin/monitoring/background-failures",
    tags=["monitoring"],
    dependencies=[Depends(require_admin)],
)

MAX_LIMIT = 500


def failure_cursor(failure: BackgroundTaskFailure) -> str:
    """An opaque cursor pointing just past `failure` (newest-first order)."""
    assert failure.created_at is not None
    return encode_cursor(failure.created_at, failure.id)


def _utc(field: str, value: datetime | None) -> datetime | None:
    # A timestamp without a zone is read as UTC, like every timestamp this API writes.
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is a time in year 0
        raise _invalid(field, "outside the years 1-9999 once converted to UTC") from None


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def failure_out(failure: BackgroundTaskFailure) -> FailureOut:
    """The API view of a failure row."""
    return FailureOut(
        id=failure.id,
        task_type=failure.task_type,
        game_id=failure.game_id,
        error_message=failure.error_message,
        error_type=failure.error_type,
        retry_count=failure.retry_count,
        url=_without_credentials(failure.url),
        resolved=bool(failure.resolved),
        created_at=failure.created_at,
        resolved_at=failure.resolved_at,
        failure_class=classify(failure.error_type),
    )


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f"Invalid request: {field}: {message}",
        fields=[{"field": field, "location": "query", "message": message}],
    )


@router.get(
    "",
    summary="Recorded background task failures, newest first, with counts.",
    description=(
        "`total_failures` and `unresolved_failures` count the whole table; "
        "`task_type_counts` counts the **unresolved** failures by task type (so it adds up "
        "to `unresolved_failures`). `failures` is filtered by the query and sorted newest "
        "first; pass `next_cursor` back as `cursor` for the next page (null: no more). "
        "`failure_class` says whether retrying may help (`transient`) or not (`permanent`)."
    ),
)
async def list_failures(
    session: SessionDep,
    resolved: Annotated[bool | None, Query(description="Only resolved (true) or not.")] = None,
    task_type: Annotated[
        QueryText | None,
        Query(min_length=1, max_length=100, description="e.g. thumbnail_download"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (max 500).")] = 50,
    since: Annotated[datetime | None, Query(description="ISO-8601; created at or after.")] = None,
    until: Annotated[datetime | None, Query(description="ISO-8601; created before.")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor.")] = None,
) -> FailureList:
    """The spec's monitoring view of `background_task_failures`."""
    before = None
    if cursor is not None:
        try:
            before = decode_cursor(cursor)
        except ValueError as exc:
            raise _invalid("cursor", str(exc)) from None
    since, until = _utc("since", since), _utc("until", until)
    if since is not None and until is not None and since > until:
        raise _invalid("until", "must not be before since")
    repository = FailureRepository(session)
    where = FailureFilter(
        resolved=resolved, task_type=task_type, since=since, until=until, before=before
    )
    rows = await repository.list(where, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    summary = await repository.summary()
    return FailureList(
        total_failures=summary.total,
        unresolved_failures=summary.unresolved,
        task_type_counts=summary.unresolved_by_type,
        failures=[failure_out(f) for f in page],
        next_cursor=failure_cursor(page[-1]) if more and page else None,
        limit=limit,
    )


FailureId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


@router.post(
    "/{failure_id}/resolve",
    summary="Mark a failure resolved.",
    responses={404: {"description": "No failure with that id."}},
)
async def resolve_failure(session: SessionDep, failure_id: FailureId) -> ActionResult:
    """Resolving twice keeps the first `resolved_at` and says it was already resolved."""
    repository = FailureRepository(session)
    if await repository.get(failure_id) is None:
        raise ApiError(404, f"Background failure {failure_id} not found")
    changed = await repository.resolve(failure_id, utcnow())
    failure = await repository.get(failure_id)
    assert failure is not None
    await session.refresh(failure)
    message = (
        f"Background failure {failure_id} marked as resolved"
        if changed
        else f"Background failure {failure_id} was already resolved"
    )
    return ActionResult(success=True, message=message, failure=failure_out(failure))


@router.post(
    "/{failure_id}/retry",
    summary="Re-run a failed task now.",
    responses={
        404: {"description": "No failure with that id."},
        202: {"description": "Queued as a background job (a `bgg_import`): `job_id` names it."},
        409: {"description": "It cannot be re-run (already resolved, game deleted, ...)."},
        503: {"description": "It ran, but the database did not take its result (yet)."},
    },
)
async def retry_failure(
    services: ServicesDep, failure_id: FailureId, response: Response
) -> ActionResult:
    """Runs the task again (for a thumbnail: downloads it for that game); success marks the
    failure resolved, another failure adds to its `retry_count`. A result the database did
    not take (it went to the spool, to be stored when the database answers again) is a 503:
    the failure is not resolved yet, whatever the run did. A `bgg_import` failure is queued
    as a job instead (202 with its `job_id`): its run resolves the failure, or counts one
    more retry; `GET /api/admin/monitoring/jobs` follows it."""
    async with services.database.session() as session:
        failure = await FailureRepository(session).get(failure_id)
    if failure is None:
        raise ApiError(404, f"Background failure {failure_id} not found")
    try:
        outcome = await services.recovery_for(failure.task_type).retry(failure_id)
    except LookupError:
        raise ApiError(404, f"Background failure {failure_id} not found") from None
    except NotRetryable as exc:
        raise ApiError(409, str(exc)) from None
    if outcome.recorded == "queued":
        response.status_code = 202
        return ActionResult(
            success=True,
            message=f"Background failure {failure_id} queued for retry as job {outcome.job_id}",
            failure=failure_out(failure),
            job_id=outcome.job_id,
        )
    if outcome.recorded != "stored":
        ran = "succeeded" if outcome.succeeded else "failed again"
        kept = (
            "it is kept and will be saved when the database answers again"
            if outcome.recorded == "spooled"
            else "it could not be kept"
        )
        raise ApiError(
            503,
            f"Background failure {failure_id} was re-run and {ran}, but the result was not "
            f"saved: {kept}",
            code="result_not_saved",
            headers={"Retry-After": DATABASE_RETRY_AFTER},
            succeeded=outcome.succeeded,
            recorded=outcome.recorded,
        )
    async with services.database.session() as session:
        failure = await FailureRepository(session).get(failure_id)
    message = (
        f"Background failure {failure_id} retried successfully and marked as resolved"
        if outcome.succeeded
        else f"Background failure {failure_id} failed again"
    )
    return ActionResult(
        success=outcome.succeeded,
        message=message,
        failure=failure_out(failure) if failure else None,
    )
