"""Failure counts kept by triggers, so the monitoring counts cost O(1) at any table size.

`COUNT(*)` over a million failure rows takes ~100 ms on PostgreSQL; the monitoring endpoint
must answer in well under 50 ms. Triggers (not the application) keep the counts, so rows
written by anyone (a backfill, a psql session, the benchmark's seeding) are counted, and
TRUNCATE resets them. NULL `resolved` (the spec's column is nullable) counts as unresolved.

Revision ID: 0004_failure_counts
Revises: 0003_task_runs
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_failure_counts"
down_revision = "0003_task_runs"
branch_labels = None
depends_on = None

# Statement-level triggers over transition tables: one grouped upsert per statement, so a
# bulk insert of a million rows costs one counter update, not a million updates of one row.
POSTGRES_UP = [
    """
    CREATE FUNCTION background_task_failure_counts_trigger() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO background_task_failure_counts (task_type, resolved, failures)
            SELECT task_type, COALESCE(resolved, FALSE), COUNT(*) FROM new_rows
             GROUP BY 1, 2
            ON CONFLICT (task_type, resolved)
            DO UPDATE SET failures = background_task_failure_counts.failures + EXCLUDED.failures;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE background_task_failure_counts AS c SET failures = c.failures - d.n
              FROM (SELECT task_type, COALESCE(resolved, FALSE) AS resolved, COUNT(*) AS n
                      FROM old_rows GROUP BY 1, 2) AS d
             WHERE c.task_type = d.task_type AND c.resolved = d.resolved;
        ELSE
            INSERT INTO background_task_failure_counts (task_type, resolved, failures)
            SELECT task_type, resolved, SUM(delta) FROM (
                SELECT task_type, COALESCE(resolved, FALSE) AS resolved, 1 AS delta
                  FROM new_rows
                UNION ALL
                SELECT task_type, COALESCE(resolved, FALSE), -1 FROM old_rows
            ) AS changes
             GROUP BY 1, 2 HAVING SUM(delta) <> 0
            ON CONFLICT (task_type, resolved)
            DO UPDATE SET failures = background_task_failure_counts.failures + EXCLUDED.failures;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER trg_background_task_failure_counts_insert
    AFTER INSERT ON background_task_failures REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION background_task_failure_counts_trigger()
    """,
    """
    CREATE TRIGGER trg_background_task_failure_counts_update
    AFTER UPDATE ON background_task_failures
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION background_task_failure_counts_trigger()
    """,
    """
    CREATE TRIGGER trg_background_task_failure_counts_delete
    AFTER DELETE ON background_task_failures REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION background_task_failure_counts_trigger()
    """,
    """
    CREATE FUNCTION background_task_failure_counts_truncate() RETURNS trigger AS $$
    BEGIN
        DELETE FROM background_task_failure_counts;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER trg_background_task_failure_counts_truncate
    AFTER TRUNCATE ON background_task_failures
    FOR EACH STATEMENT EXECUTE FUNCTION background_task_failure_counts_truncate()
    """,
]

POSTGRES_DOWN = [
    *(
        f"DROP TRIGGER IF EXISTS trg_background_task_failure_counts_{kind}"
        " ON background_task_failures"
        for kind in ("truncate", "delete", "update", "insert")
    ),
    "DROP FUNCTION IF EXISTS background_task_failure_counts_truncate()",
    "DROP FUNCTION IF EXISTS background_task_failure_counts_trigger()",
]

_SQLITE_ADD_NEW = """
    INSERT INTO background_task_failure_counts (task_type, resolved, failures)
    VALUES (NEW.task_type, COALESCE(NEW.resolved, 0), 1)
    ON CONFLICT (task_type, resolved) DO UPDATE SET failures = failures + 1;
"""
_SQLITE_REMOVE_OLD = """
    UPDATE background_task_failure_counts SET failures = failures - 1
     WHERE task_type = OLD.task_type AND resolved = COALESCE(OLD.resolved, 0);
"""

SQLITE_UP = [
    "CREATE TRIGGER trg_background_task_failure_counts_insert"
    f" AFTER INSERT ON background_task_failures BEGIN {_SQLITE_ADD_NEW} END",
    "CREATE TRIGGER trg_background_task_failure_counts_delete"
    f" AFTER DELETE ON background_task_failures BEGIN {_SQLITE_REMOVE_OLD} END",
    "CREATE TRIGGER trg_background_task_failure_counts_update"
    " AFTER UPDATE OF task_type, resolved ON background_task_failures"
    f" BEGIN {_SQLITE_REMOVE_OLD} {_SQLITE_ADD_NEW} END",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS trg_background_task_failure_counts_update",
    "DROP TRIGGER IF EXISTS trg_background_task_failure_counts_delete",
    "DROP TRIGGER IF EXISTS trg_background_task_failure_counts_insert",
]


def upgrade() -> None:
    op.create_table(
        "background_task_failure_counts",
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("failures", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "task_type", "resolved", name=op.f("pk_background_task_failure_counts")
        ),
    )
    op.execute(
        "INSERT INTO background_task_failure_counts (task_type, resolved, failures)"
        " SELECT task_type, COALESCE(resolved, FALSE), COUNT(*)"
        " FROM background_task_failures GROUP BY task_type, COALESCE(resolved, FALSE)"
    )
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_UP if dialect == "postgresql" else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_DOWN if dialect == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("background_task_failure_counts")
