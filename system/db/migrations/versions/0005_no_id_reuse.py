"""Game ids are never reused, and a run can be `superseded`.

SQLite hands a deleted game's id to the next game unless the key is `AUTOINCREMENT`; a late
download for the deleted game then landed on the new one. PostgreSQL's sequence never reuses
an id, so only SQLite's `boardgames` is rebuilt (batch mode). Rebuilding drops the old table,
and with foreign keys on (every connection turns them on, and the pragma cannot change inside
the migration's transaction) that drop sets `game_id` to NULL in the rows referring to it:
those references are saved first and put back after.

`superseded` is the outcome of a download that finished after its game was deleted or given
another thumbnail URL: nothing is stored on the game. Downgrading deletes those run rows, as
the older schema has no such outcome.

Revision ID: 0005_no_id_reuse
Revises: 0004_failure_counts
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_no_id_reuse"
down_revision = "0004_failure_counts"
branch_labels = None
depends_on = None

RUNS = "background_task_runs"
CHECK = "ck_background_task_runs_outcome"
OUTCOMES_BEFORE = "outcome IN ('success', 'failure')"
OUTCOMES_AFTER = "outcome IN ('success', 'failure', 'superseded')"


def _game_references(bind: sa.Connection) -> list[tuple[str, str]]:
    """(table, column) of every foreign key pointing at `boardgames`."""
    inspector = sa.inspect(bind)
    return [
        (table, fk["constrained_columns"][0])
        for table in inspector.get_table_names()
        for fk in inspector.get_foreign_keys(table)
        if fk["referred_table"] == "boardgames"
    ]


def _rebuild_games(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    references = _game_references(bind)
    for n, (table, column) in enumerate(references):
        op.execute(
            f"CREATE TEMP TABLE _game_refs_{n} AS"  # noqa: S608 (names from the schema)
            f" SELECT id, {column} AS game_id FROM {table} WHERE {column} IS NOT NULL"
        )
    with op.batch_alter_table(
        "boardgames", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    for n, (table, column) in enumerate(references):
        op.execute(
            f"UPDATE {table} SET {column} ="  # noqa: S608 (names from the schema)
            f" (SELECT r.game_id FROM _game_refs_{n} AS r WHERE r.id = {table}.id)"
            f" WHERE id IN (SELECT id FROM _game_refs_{n})"
        )
        op.execute(f"DROP TABLE _game_refs_{n}")


def _outcomes(check: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(RUNS, recreate="always") as batch:
            batch.drop_constraint(op.f(CHECK), type_="check")
            batch.create_check_constraint(op.f(CHECK), sa.text(check))
        return
    op.drop_constraint(op.f(CHECK), RUNS, type_="check")
    op.create_check_constraint(op.f(CHECK), RUNS, sa.text(check))


def upgrade() -> None:
    _outcomes(OUTCOMES_AFTER)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_games(autoincrement=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_games(autoincrement=False)
        # The table itself is SQLite's and may not be dropped; its row for ours can go.
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'boardgames'")
    op.execute(f"DELETE FROM {RUNS} WHERE outcome = 'superseded'")  # noqa: S608
    _outcomes(OUTCOMES_BEFORE)
