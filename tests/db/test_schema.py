"""The migrated schema against the spec's DDL, read back with SQLAlchemy's inspector."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, types
from sqlalchemy.ext.asyncio import AsyncConnection

from system.db.engine import create_engine

# The spec, column by column: (name, type, length, nullable, default kind).
SPEC_FAILURE_COLUMNS: list[
    tuple[str, type[types.TypeEngine[Any]], int | None, bool, str | None]
] = [
    ("id", types.Integer, None, False, "serial"),
    ("task_type", types.String, 100, False, None),
    ("game_id", types.Integer, None, True, None),
    ("error_message", types.Text, None, False, None),
    ("error_type", types.String, 200, True, None),
    ("stack_trace", types.Text, None, True, None),
    ("retry_count", types.Integer, None, True, "0"),
    ("url", types.String, 512, True, None),
    ("resolved", types.Boolean, None, True, "false"),
    ("resolved_at", types.DateTime, None, True, None),
    ("created_at", types.DateTime, None, True, "now"),
]

SPEC_INDEXES = {
    "idx_task_failure_type_date": ["task_type", "created_at"],
    "idx_task_failure_resolved": ["resolved", "created_at"],
    "idx_task_failure_game": ["game_id", "task_type"],
}


def _default_kind(default: str | None, backend: str) -> str | None:
    if default is None:
        return None
    value = default.lower().strip("()'\" ")
    if "nextval" in value:
        return "serial"
    if value in {"now", "current_timestamp"}:
        return "now"
    if value in {"false", "0"} and backend == "sqlite":
        # SQLite has no boolean literal: FALSE is stored as 0.
        return value
    return value


async def _inspect(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await _read(conn)
    finally:
        await engine.dispose()


async def _read(conn: AsyncConnection) -> dict[str, Any]:
    def read(sync_conn: Any) -> dict[str, Any]:
        inspector = inspect(sync_conn)
        return {
            "tables": set(inspector.get_table_names()),
            "columns": inspector.get_columns("background_task_failures"),
            "pk": inspector.get_pk_constraint("background_task_failures"),
            "fks": inspector.get_foreign_keys("background_task_failures"),
            "indexes": inspector.get_indexes("background_task_failures"),
            "game_columns": {c["name"] for c in inspector.get_columns("boardgames")},
            "game_indexes": inspector.get_indexes("boardgames"),
            "run_columns": {c["name"] for c in inspector.get_columns("background_task_runs")},
        }

    return await conn.run_sync(read)


async def test_failure_table_matches_the_spec(database_url: str, backend: str) -> None:
    schema = await _inspect(database_url)
    columns = {c["name"]: c for c in schema["columns"]}
    assert list(columns) == [c[0] for c in SPEC_FAILURE_COLUMNS], "columns or their order differ"
    for name, type_, length, nullable, default in SPEC_FAILURE_COLUMNS:
        column = columns[name]
        assert isinstance(column["type"], type_), (name, column["type"])
        # isinstance against type_ (a variable) narrows nothing for mypy: narrowed again below.
        if length is not None:
            assert isinstance(column["type"], types.String), name  # the only types with a length
            assert column["type"].length == length, name
        if type_ is types.DateTime:
            assert isinstance(column["type"], types.DateTime), name
            assert not column["type"].timezone, f"{name} must be TIMESTAMP without time zone"
        if name != "id":
            assert column["nullable"] is nullable, name
        kind = _default_kind(column.get("default"), backend)
        if backend == "sqlite" and default == "serial":
            assert kind is None  # INTEGER PRIMARY KEY is SQLite's rowid: auto-increment
        elif backend == "sqlite" and default == "false":
            assert kind in {"0", "false"}, (name, column.get("default"))
        else:
            assert kind == default, (name, column.get("default"))
    assert schema["pk"]["constrained_columns"] == ["id"]


async def test_failure_table_foreign_key_sets_null(database_url: str) -> None:
    schema = await _inspect(database_url)
    (fk,) = schema["fks"]
    assert fk["constrained_columns"] == ["game_id"]
    assert fk["referred_table"] == "boardgames"
    assert fk["referred_columns"] == ["id"]
    assert fk["options"].get("ondelete", "").upper() == "SET NULL"


async def test_failure_table_has_the_three_spec_indexes(database_url: str) -> None:
    schema = await _inspect(database_url)
    indexes = {i["name"]: i["column_names"] for i in schema["indexes"]}
    for name, columns in SPEC_INDEXES.items():
        assert indexes.get(name) == columns, name


async def test_catalogue_and_runs_tables(database_url: str) -> None:
    schema = await _inspect(database_url)
    assert {"boardgames", "background_task_failures", "background_task_runs"} <= schema["tables"]
    assert {
        "id", "bgg_id", "title", "year_published", "min_players", "max_players", "playing_time",
        "min_age", "description", "thumbnail_url", "image_url", "thumbnail_path",
        "average_rating", "bayes_average", "bgg_rank", "categories", "mechanics", "designers",
        "publishers", "is_expansion", "created_at", "updated_at",
    } == schema["game_columns"]  # fmt: skip
    bgg_index = [i for i in schema["game_indexes"] if i["column_names"] == ["bgg_id"]]
    assert bgg_index and bgg_index[0]["unique"]
    assert {
        "task_type", "game_id", "outcome", "attempts", "started_at", "finished_at", "duration_ms",
    } <= schema["run_columns"]  # fmt: skip


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_postgres_types_are_the_spec_types(database_url: str) -> None:
    """On PostgreSQL the DDL words themselves: SERIAL, VARCHAR(n), TEXT, TIMESTAMP, BOOLEAN."""
    schema = await _inspect(database_url)
    compiled = {c["name"]: str(c["type"]) for c in schema["columns"]}
    assert compiled == {
        "id": "INTEGER",
        "task_type": "VARCHAR(100)",
        "game_id": "INTEGER",
        "error_message": "TEXT",
        "error_type": "VARCHAR(200)",
        "stack_trace": "TEXT",
        "retry_count": "INTEGER",
        "url": "VARCHAR(512)",
        "resolved": "BOOLEAN",
        "resolved_at": "TIMESTAMP",
        "created_at": "TIMESTAMP",
    }
