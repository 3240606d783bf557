"""Create the boardgames catalogue.

Revision ID: 0001_boardgames
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_boardgames"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "boardgames",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bgg_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("year_published", sa.Integer()),
        sa.Column("min_players", sa.Integer()),
        sa.Column("max_players", sa.Integer()),
        sa.Column("playing_time", sa.Integer()),
        sa.Column("min_age", sa.Integer()),
        sa.Column("description", sa.Text()),
        sa.Column("thumbnail_url", sa.String(512)),
        sa.Column("image_url", sa.String(512)),
        sa.Column("thumbnail_path", sa.String(512)),
        sa.Column("average_rating", sa.Float()),
        sa.Column("bayes_average", sa.Float()),
        sa.Column("bgg_rank", sa.Integer()),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("mechanics", JSON, nullable=False),
        sa.Column("designers", JSON, nullable=False),
        sa.Column("publishers", JSON, nullable=False),
        sa.Column("is_expansion", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boardgames")),
    )
    op.create_index("ix_boardgames_bgg_id", "boardgames", ["bgg_id"], unique=True)
    op.create_index("ix_boardgames_title", "boardgames", ["title"])


def downgrade() -> None:
    op.drop_index("ix_boardgames_title", table_name="boardgames")
    op.drop_index("ix_boardgames_bgg_id", table_name="boardgames")
    op.drop_table("boardgames")
