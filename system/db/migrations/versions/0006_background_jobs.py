"""The job table is the queue: background work is a row, not an asyncio task.

A job is written in the same transaction as the change that needs it (a game upsert writes
its thumbnail job), claimed by a worker under a lease on the database's clock, and finished
by a write fenced on its owner and attempt. `background_task_runs.job_id` says which job a
run was an attempt of. Design: docs/design/0001-job-queue.md.

Revision ID: 0006_background_jobs
Revises: 0005_no_id_reuse
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_background_jobs"
down_revision = "0005_no_id_reuse"
branch_labels = None
depends_on = None

JOBS = "background_jobs"
RUNS = "background_task_runs"
JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")
LIVE = "status IN ('queued', 'running')"


def _partial(where: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}


def upgrade() -> None:
    op.create_table(
        JOBS,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("trigger", sa.String(20), server_default="initial", nullable=False),
        sa.Column("status", sa.String(20), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_expiries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("run_after", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_expires_at", sa.DateTime()),
        sa.Column("dedupe_key", sa.String(200)),
        sa.Column(
            "failure_id",
            sa.Integer(),
            sa.ForeignKey(
                "background_task_failures.id",
                ondelete="SET NULL",
                name="fk_background_jobs_failure_id_background_task_failures",
            ),
        ),
        sa.Column("last_error_type", sa.String(200)),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_background_jobs")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_background_jobs_status"),
        ),
        sa.CheckConstraint(
            "(status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name=op.f("ck_background_jobs_lease"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_background_jobs_ready", JOBS, ["run_after", "id"], **_partial("status = 'queued'")
    )
    op.create_index(
        "ix_background_jobs_lease", JOBS, ["lease_expires_at"], **_partial("status = 'running'")
    )
    op.create_index("ix_background_jobs_type_status", JOBS, ["task_type", "status"])
    op.create_index("ix_background_jobs_created", JOBS, ["created_at", "id"])
    op.create_index(
        "uq_background_jobs_dedupe",
        JOBS,
        ["dedupe_key"],
        unique=True,
        **_partial(f"dedupe_key IS NOT NULL AND {LIVE}"),
    )
    with op.batch_alter_table(RUNS) as batch:
        batch.add_column(sa.Column("job_id", sa.Integer()))
        batch.create_foreign_key(
            "fk_background_task_runs_job_id_background_jobs",
            JOBS,
            ["job_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("idx_task_run_job", ["job_id"])


def downgrade() -> None:
    with op.batch_alter_table(RUNS) as batch:
        batch.drop_index("idx_task_run_job")
        batch.drop_constraint("fk_background_task_runs_job_id_background_jobs", type_="foreignkey")
        batch.drop_column("job_id")
    for index in (
        "uq_background_jobs_dedupe",
        "ix_background_jobs_created",
        "ix_background_jobs_type_status",
        "ix_background_jobs_lease",
        "ix_background_jobs_ready",
    ):
        op.drop_index(index, table_name=JOBS)
    op.drop_table(JOBS)
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DELETE FROM sqlite_sequence WHERE name = '{JOBS}'")  # noqa: S608
