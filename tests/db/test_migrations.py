"""Alembic revisions: up, down (the spec's rollback plan) and up again, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from system.db import migrate
from system.db.base import Base
from system.db.engine import create_engine


async def _tables_and_indexes(url: str) -> tuple[set[str], set[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def read(sync_conn: Any) -> tuple[set[str], set[str]]:
                inspector = inspect(sync_conn)
                tables = set(inspector.get_table_names())
                indexes = {
                    index["name"]
                    for table in tables
                    for index in inspector.get_indexes(table)
                    if index["name"]
                }
                return tables, indexes

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        tables, indexes = await _tables_and_indexes(empty_database_url)
        assert "background_task_failures" in tables
        assert {"idx_task_failure_type_date", "idx_task_failure_resolved"} <= indexes

        # The spec's rollback: downgrading the failure-tracking revision drops it all.
        await migrate.downgrade(engine, "0001_boardgames")
        tables, indexes = await _tables_and_indexes(empty_database_url)
        assert "background_task_failures" not in tables
        assert "background_task_runs" not in tables
        assert not {i for i in indexes if i.startswith("idx_task_failure")}
        assert "boardgames" in tables

        await migrate.upgrade(engine)
        tables, _ = await _tables_and_indexes(empty_database_url)
        assert {"boardgames", "background_task_failures", "background_task_runs"} <= tables

        await migrate.downgrade(engine, "base")
        tables, _ = await _tables_and_indexes(empty_database_url)
        assert tables <= {"alembic_version"}
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(database_url: str) -> None:
    """Autogenerate finds nothing to do: the ORM models and the revisions agree."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(context, Base.metadata))

            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def test_migrate_to_picks_the_direction(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        assert await migrate.migrate_to(engine, "0002_task_failures") == (None, "upgrade")
        assert await migrate.migrate_to(engine, "head") == ("0002_task_failures", "upgrade")
        head = migrate.head_revision()
        assert await migrate.migrate_to(engine, head) == (head, "none")
        assert await migrate.migrate_to(engine, "0001_boardgames") == (head, "downgrade")
        assert await migrate.current_revision(engine) == "0001_boardgames"
        assert await migrate.migrate_to(engine, "base") == ("0001_boardgames", "downgrade")
        assert await migrate.current_revision(engine) is None
        with pytest.raises(ValueError, match="unknown revision"):
            await migrate.migrate_to(engine, "0009_nothing")
    finally:
        await engine.dispose()
