"""API schemas (apart from the ORM models in `system/db/models.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
    field_validator,
)

from system.clock import isoformat_z

#: Every timestamp the API returns: ISO-8601, UTC, with a `Z`.
UTCTimestamp = Annotated[datetime, PlainSerializer(isoformat_z, return_type=str)]


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (%00)")
    return value


#: Text a caller sends in a query string. NUL is refused with a 422: PostgreSQL cannot
#: compare text holding it (the query would fail), and SQLite's LIKE stops reading there.
QueryText = Annotated[str, AfterValidator(_without_nul)]


class Game(BaseModel):
    """A game in the catalogue, as anyone (public and admin routes alike) sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    bgg_id: int
    title: str
    year_published: int | None
    min_players: int | None
    max_players: int | None
    playing_time: int | None
    min_age: int | None
    description: str | None
    thumbnail_url: str | None
    image_url: str | None
    #: Read from the row, never shown: a path on the server's disk is nobody's business
    #: outside it. `has_thumbnail` says what a client may know.
    thumbnail_path: str | None = Field(exclude=True, repr=False)
    average_rating: float | None
    bayes_average: float | None
    bgg_rank: int | None
    categories: list[str]
    mechanics: list[str]
    designers: list[str]
    publishers: list[str]
    is_expansion: bool
    created_at: UTCTimestamp
    updated_at: UTCTimestamp

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_thumbnail(self) -> bool:
        """Whether the thumbnail has been downloaded and stored."""
        return self.thumbnail_path is not None

    @field_validator("thumbnail_url", "image_url")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        # The parser no longer stores such URLs; a row stored before it did is not shown.
        if value is None:
            return None
        try:
            netloc = urlsplit(value).netloc
        except ValueError:
            return None
        return None if "@" in netloc else value


class GamePage(BaseModel):
    """One page of the catalogue."""

    items: list[Game]
    total: int
    limit: int
    offset: int


class BreakerTransition(BaseModel):
    """One state change a worker observed."""

    from_state: str
    to_state: str
    at: UTCTimestamp


class BreakerStatus(BaseModel):
    """A circuit breaker, in the spec's shape plus the figures an operator needs."""

    circuit_breaker: str
    state: str
    is_available: bool
    failure_count: int
    description: str
    fail_max: int
    reset_timeout: float
    opened_at: UTCTimestamp | None
    seconds_until_half_open: float | None
    last_failure_at: UTCTimestamp | None
    state_storage: str
    recent_transitions: list[BreakerTransition]
    policy: dict[str, Any] | None = None


class BreakerList(BaseModel):
    """Every breaker of the service."""

    circuit_breakers: list[BreakerStatus]


class FailureOut(BaseModel):
    """One recorded background task failure (no stack trace: see the table for that)."""

    id: int
    task_type: str
    game_id: int | None
    error_message: str
    error_type: str | None
    retry_count: int | None
    url: str | None
    resolved: bool
    created_at: UTCTimestamp | None
    resolved_at: UTCTimestamp | None
    #: `transient` (timeouts, network, 5xx, breaker open: worth retrying) or `permanent`.
    failure_class: str


class FailureList(BaseModel):
    """The spec's monitoring answer, plus paging."""

    total_failures: int
    unresolved_failures: int
    task_type_counts: dict[str, int]
    failures: list[FailureOut]
    next_cursor: str | None
    limit: int


class ActionResult(BaseModel):
    """The answer of resolve and retry."""

    success: bool
    message: str
    failure: FailureOut | None = None
    #: The retry job, when a retry was queued (202) rather than run at once.
    job_id: int | None = None


class BulkImportRequest(BaseModel):
    """The bulk import's body. Each id is checked by the route (strict integers in
    1..`BGG_MAX_ID`, at most `BULK_IMPORT_MAX` of them), so a bad list names the item."""

    model_config = ConfigDict(extra="forbid")

    bgg_ids: list[Any] = Field(
        description="BGG ids to import: 1 to BULK_IMPORT_MAX (500) integers in 1..BGG_MAX_ID; "
        "a repeated id is imported once.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1}, "minItems": 1},
    )


class BulkImportJob(BaseModel):
    """One id of a bulk import and the job that imports it."""

    bgg_id: int
    job_id: int
    #: `queued` for a new job; a live job found by its dedupe key may be `running`.
    status: str
    #: True when the id was already queued or running (that job is returned, none added).
    existing: bool


class BulkImportAccepted(BaseModel):
    """The 202 of a bulk import: one job per distinct id, in request order."""

    jobs: list[BulkImportJob]
    count: int


class JobOut(BaseModel):
    """One background job, as the monitoring route shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    task_type: str
    payload: Any
    trigger: str
    status: str
    attempts: int
    max_attempts: int
    lease_expiries: int
    run_after: UTCTimestamp
    lease_owner: str | None
    lease_expires_at: UTCTimestamp | None
    failure_id: int | None
    last_error_type: str | None
    last_error: str | None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp
    started_at: UTCTimestamp | None
    finished_at: UTCTimestamp | None


class JobList(BaseModel):
    """Counts of the whole job table, and one page of jobs, newest first."""

    #: task type -> status -> jobs.
    counts: dict[str, dict[str, int]]
    #: Seconds the oldest *due* queued job has waited (None: none is due).
    oldest_queued_age_seconds: float | None
    #: The same, per task type (types with a due queued job only).
    oldest_queued_age_seconds_by_type: dict[str, float]
    jobs: list[JobOut]
    next_cursor: str | None
    limit: int
