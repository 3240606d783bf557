"""One row per background task run, so task success is measured, not guessed.

Revision ID: 0003_task_runs
Revises: 0002_task_failures
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_task_runs"
down_revision = "0002_task_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "background_task_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column(
            "game_id",
            sa.Integer(),
            sa.ForeignKey(
                "boardgames.id",
                ondelete="SET NULL",
                name="fk_background_task_runs_game_id_boardgames",
            ),
        ),
        sa.Column(
            "failure_id",
            sa.Integer(),
            sa.ForeignKey(
                "background_task_failures.id",
                ondelete="SET NULL",
                name="fk_background_task_runs_failure_id_background_task_failures",
            ),
        ),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(20), server_default="initial", nullable=False),
        sa.Column("error_type", sa.String(200)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_background_task_runs")),
        sa.UniqueConstraint("record_id", name=op.f("uq_background_task_runs_record_id")),
        sa.CheckConstraint(
            "outcome IN ('success', 'failure')", name=op.f("ck_background_task_runs_outcome")
        ),
    )
    op.create_index("idx_task_run_type_date", "background_task_runs", ["task_type", "started_at"])
    op.create_index("idx_task_run_date", "background_task_runs", ["started_at"])
    op.create_index("idx_task_run_failure", "background_task_runs", ["failure_id"])


def downgrade() -> None:
    op.drop_index("idx_task_run_failure", table_name="background_task_runs")
    op.drop_index("idx_task_run_date", table_name="background_task_runs")
    op.drop_index("idx_task_run_type_date", table_name="background_task_runs")
    op.drop_table("background_task_runs")
