"""The catalogue's version: one row, bumped by the database in every transaction that writes
`boardgames`, so a conditional read can tell "nothing changed" without reading any game.

Triggers, not application code: every writer (an API import or delete, a job worker in
another process or on another host, a thumbnail landing, a hand-written UPDATE) bumps it, in
the same transaction as its write, so the new version is visible exactly when the write is.
PostgreSQL bumps it once per statement, BEFORE the statement: every writer locks the version
row before any game row, in the same order, so two writers never deadlock on it (they queue
on it instead, for the rest of the shorter one's transaction). SQLite has only row triggers;
its writers are serialised by the database lock anyway.

Revision ID: 0007_catalogue_version
Revises: 0006_background_jobs
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_catalogue_version"
down_revision = "0006_background_jobs"
branch_labels = None
depends_on = None

TABLE = "catalogue_version"
BUMP = f"UPDATE {TABLE} SET version = version + 1 WHERE id = 1"  # noqa: S608 (constant)
SQLITE_TRIGGERS = ("insert", "update", "delete")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_version")),
        sa.CheckConstraint("id = 1", name=op.f("ck_catalogue_version_one_row")),
    )
    op.execute(f"INSERT INTO {TABLE} (id, version) VALUES (1, 1)")  # noqa: S608
    if op.get_bind().dialect.name == "sqlite":
        for event in SQLITE_TRIGGERS:
            op.execute(
                f"CREATE TRIGGER boardgames_bump_version_{event} AFTER {event.upper()}"
                f" ON boardgames BEGIN {BUMP}; END"
            )
        return
    op.execute(
        "CREATE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN {BUMP}; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER boardgames_bump_version BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
        " ON boardgames FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER boardgames_bump_version_{event}")
    else:
        op.execute("DROP TRIGGER boardgames_bump_version ON boardgames")
        op.execute("DROP FUNCTION bump_catalogue_version()")
    op.drop_table(TABLE)
