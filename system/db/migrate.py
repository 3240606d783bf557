"""Alembic, driven from Python: `python -m system migrate` and the app's start-up use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at this package's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision in the code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision` in one transaction."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade the database behind `engine` to `revision`."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", revision)


def revisions() -> list[str]:
    """Every revision in the code, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


class UnknownRevision(ValueError):
    """A target revision the code does not have."""


def check_revision(revision: str) -> list[str]:
    """The code's revisions, oldest first; `UnknownRevision` when `revision` is not a target."""
    known = revisions()
    if revision not in {"head", "base", *known}:
        raise UnknownRevision(
            f"unknown revision {revision!r}; known: base, {', '.join(known)}, head"
        )
    return known


async def migrate_to(engine: AsyncEngine, revision: str) -> tuple[str | None, str]:
    """Move the database to `revision` ("head", "base" or an id), up or down as needed.

    Returns the revision before and the direction taken ("upgrade", "downgrade" or "none").
    Raises `UnknownRevision` before touching the database.
    """
    known = check_revision(revision)
    before = await current_revision(engine)
    target = known[-1] if revision == "head" else None if revision == "base" else revision
    position = {rev: index for index, rev in enumerate(known)}
    here = -1 if before is None else position.get(before, len(known))
    there = -1 if target is None else position[target]
    if there == here:
        return before, "none"
    if there > here:
        await upgrade(engine, target or "head")
        return before, "upgrade"
    await downgrade(engine, target or "base")
    return before, "downgrade"


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )


#: Arbitrary, fixed key: replicas starting together take turns instead of racing the DDL.
_MIGRATION_LOCK_KEY = 4_242_001


def _run(connection: Connection, direction: str, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = connection
    if direction == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)
