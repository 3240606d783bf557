"""Admin monitoring of the job queue: counts by task type and status, the oldest due job's
age, and the jobs themselves, filtered and paged like the failures list."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from system.api.auth import require_admin
from system.api.deps import SessionDep
from system.api.errors import ApiError
from system.api.paging import decode_cursor, encode_cursor
from system.api.schemas import JobList, JobOut, QueryText
from system.db import jobs

router = APIRouter(
    prefix="/api/admin/monitoring/jobs",
    tags=["monitoring"],
    dependencies=[Depends(require_admin)],
)

MAX_LIMIT = 500


@router.get(
    "",
    summary="Background jobs, newest first, with counts by task type and status.",
    description=(
        "`counts` covers the whole table (task type -> status -> jobs); "
        "`oldest_queued_age_seconds` is how long the oldest queued job that is *due* has "
        "waited (a `bgg_import` job waiting on the open BGG breaker is not due: null when "
        "none is). `jobs` is filtered by `status` and `task_type` and sorted newest first "
        "(`created_at`, then `id`); pass `next_cursor` back as `cursor` for the next page "
        "(null: no more)."
    ),
)
async def list_jobs(
    session: SessionDep,
    status: Annotated[
        Literal["queued", "running", "done", "failed"] | None,
        Query(description="Only jobs in this status."),
    ] = None,
    task_type: Annotated[
        QueryText | None,
        Query(min_length=1, max_length=100, description="e.g. bgg_import, thumbnail_download"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (max 500).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor.")] = None,
) -> JobList:
    """The queue as an operator sees it."""
    before = None
    if cursor is not None:
        try:
            before = decode_cursor(cursor)
        except ValueError as exc:
            raise ApiError(
                422,
                f"Invalid request: cursor: {exc}",
                fields=[{"field": "cursor", "location": "query", "message": str(exc)}],
            ) from None
    rows = await jobs.list_jobs(
        session, limit=limit + 1, status=status, task_type=task_type, before=before
    )
    page, more = rows[:limit], len(rows) > limit
    counted = await jobs.count_jobs(session)
    counts: dict[str, dict[str, int]] = {}
    for (kind, state), n in sorted(counted.counts.items()):
        counts.setdefault(kind, {})[state] = n
    ages = counted.oldest_due_seconds
    return JobList(
        counts=counts,
        oldest_queued_age_seconds=max(ages.values()) if ages else None,
        oldest_queued_age_seconds_by_type=ages,
        jobs=[JobOut.model_validate(job) for job in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more and page else None,
        limit=limit,
    )
