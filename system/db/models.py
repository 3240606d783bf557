"""ORM models. API schemas live apart, in `system/api/schemas.py`.

`background_task_failures` follows the spec's DDL to the column (names, types, defaults, the
foreign key and the three index names); `tests/db/test_schema.py` inspects the migrated
database against it. `background_task_runs` is ours: one row per background task run, so the
">95 % background task success" target is computed from data rather than guessed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from system.bgg.models import TITLE_MAX_LENGTH, URL_MAX_LENGTH
from system.clock import utcnow
from system.db.base import Base
from system.db.types import JSONType, UTCDateTime


class BoardGame(Base):
    """A game in the catalogue, imported from BGG and keyed by its BGG id."""

    __tablename__ = "boardgames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bgg_id: Mapped[int] = mapped_column(Integer, unique=True, index=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    year_published: Mapped[int | None] = mapped_column(Integer)
    min_players: Mapped[int | None] = mapped_column(Integer)
    max_players: Mapped[int | None] = mapped_column(Integer)
    playing_time: Mapped[int | None] = mapped_column(Integer)
    min_age: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(String(URL_MAX_LENGTH))
    image_url: Mapped[str | None] = mapped_column(String(URL_MAX_LENGTH))
    thumbnail_path: Mapped[str | None] = mapped_column(String(512))
    average_rating: Mapped[float | None] = mapped_column(Float)
    bayes_average: Mapped[float | None] = mapped_column(Float)
    bgg_rank: Mapped[int | None] = mapped_column(Integer)
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    mechanics: Mapped[list[str]] = mapped_column(JSONType, default=list)
    designers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    publishers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    is_expansion: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    # AUTOINCREMENT: SQLite would give a deleted game's id to the next one (migration 0005).
    __table_args__ = (Index("ix_boardgames_title", "title"), {"sqlite_autoincrement": True})


class CatalogueVersion(Base):
    """One row whose `version` the database bumps in every transaction that writes
    `boardgames` (triggers of migration 0007): "has the catalogue changed since version N"
    is one primary-key read, whichever process or host wrote."""

    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


class BackgroundTaskFailure(Base):
    """A background task that failed after its last attempt (the spec's table, verbatim)."""

    __tablename__ = "background_task_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_type: Mapped[str] = mapped_column(String(100), nullable=False)
    game_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("boardgames.id", ondelete="SET NULL")
    )
    error_message: Mapped[str] = mapped_column(Text, nullable=False)
    error_type: Mapped[str | None] = mapped_column(String(200))
    stack_trace: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int | None] = mapped_column(Integer, default=0, server_default=text("0"))
    url: Mapped[str | None] = mapped_column(String(512))
    resolved: Mapped[bool | None] = mapped_column(Boolean, default=False, server_default=false())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        Index("idx_task_failure_type_date", "task_type", "created_at"),
        Index("idx_task_failure_resolved", "resolved", "created_at"),
        Index("idx_task_failure_game", "game_id", "task_type"),
    )


class BackgroundTaskFailureCount(Base):
    """How many failures there are per (task_type, resolved); kept by database triggers."""

    __tablename__ = "background_task_failure_counts"

    task_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    resolved: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    failures: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class BackgroundTaskRun(Base):
    """One run of a background task, success or failure."""

    __tablename__ = "background_task_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Client-made UUID: a record replayed from the spool is recognised and never doubled.
    record_id: Mapped[str] = mapped_column(String(36), unique=True)
    task_type: Mapped[str] = mapped_column(String(100))
    game_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("boardgames.id", ondelete="SET NULL")
    )
    failure_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("background_task_failures.id", ondelete="SET NULL")
    )
    outcome: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    #: What started the run: `initial`, `manual_retry` or `auto_retry`.
    trigger: Mapped[str] = mapped_column(String(20), default="initial", server_default="initial")
    error_type: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    #: The job this run was an attempt of (NULL for runs from before the job table).
    job_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("background_jobs.id", ondelete="SET NULL")
    )

    __table_args__ = (
        CheckConstraint("outcome IN ('success', 'failure', 'superseded')", name="outcome"),
        Index("idx_task_run_type_date", "task_type", "started_at"),
        Index("idx_task_run_date", "started_at"),
        Index("idx_task_run_failure", "failure_id"),
        Index("idx_task_run_job", "job_id"),
    )


#: Job states in which a job holds its dedupe key (one live job per key).
LIVE_JOB_STATES = ("queued", "running")
#: The dedupe index's predicate (an enqueue's ON CONFLICT target repeats it word for word).
LIVE_DEDUPE_PREDICATE = "dedupe_key IS NOT NULL AND status IN ('queued', 'running')"


class BackgroundJob(Base):
    """A unit of background work: the queue is this table (see docs/design/0001-job-queue.md).

    Written in the same transaction as the change that needs it, claimed by workers with a
    lease on the database's clock, finished by a write fenced on (owner, attempts).
    """

    __tablename__ = "background_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    trigger: Mapped[str] = mapped_column(String(20), server_default="initial")
    status: Mapped[str] = mapped_column(String(20), server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_expiries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    failure_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("background_task_failures.id", ondelete="SET NULL")
    )
    last_error_type: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint(
            "(status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="lease",
        ),
        Index(
            "ix_background_jobs_ready",
            "run_after",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_background_jobs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        Index("ix_background_jobs_type_status", "task_type", "status"),
        Index("ix_background_jobs_created", "created_at", "id"),
        Index(
            "uq_background_jobs_dedupe",
            "dedupe_key",
            unique=True,
            postgresql_where=text(LIVE_DEDUPE_PREDICATE),
            sqlite_where=text(LIVE_DEDUPE_PREDICATE),
        ),
        # Ids go to clients (the bulk import's 202): never reused, as for games (0005).
        {"sqlite_autoincrement": True},
    )
