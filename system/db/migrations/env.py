"""Alembic environment: runs on the connection `system.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from system.db import models  # noqa: F401  (registers the tables on Base.metadata)
from system.db.base import Base

config = context.config


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `python -m system migrate`")
_run_migrations(connection)
