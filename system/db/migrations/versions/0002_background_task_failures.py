"""Failure tracking: the spec's background_task_failures table and its three indexes.

Downgrading this revision is the spec's rollback plan: it drops the table and its indexes.

Revision ID: 0002_task_failures
Revises: 0001_boardgames
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_task_failures"
down_revision = "0001_boardgames"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "background_task_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column(
            "game_id",
            sa.Integer(),
            sa.ForeignKey(
                "boardgames.id",
                ondelete="SET NULL",
                name="fk_background_task_failures_game_id_boardgames",
            ),
        ),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("error_type", sa.String(200)),
        sa.Column("stack_trace", sa.Text()),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0")),
        sa.Column("url", sa.String(512)),
        sa.Column("resolved", sa.Boolean(), server_default=sa.false()),
        sa.Column("resolved_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_background_task_failures")),
    )
    op.create_index(
        "idx_task_failure_type_date", "background_task_failures", ["task_type", "created_at"]
    )
    op.create_index(
        "idx_task_failure_resolved", "background_task_failures", ["resolved", "created_at"]
    )
    op.create_index("idx_task_failure_game", "background_task_failures", ["game_id", "task_type"])


def downgrade() -> None:
    op.drop_index("idx_task_failure_game", table_name="background_task_failures")
    op.drop_index("idx_task_failure_resolved", table_name="background_task_failures")
    op.drop_index("idx_task_failure_type_date", table_name="background_task_failures")
    op.drop_table("background_task_failures")
