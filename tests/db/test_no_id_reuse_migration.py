"""Revision 0005 on a database holding data: nothing lost up or down, ids never reused after.

On SQLite it rebuilds `boardgames`, and dropping the old table with foreign keys on would set
every failure's and run's `game_id` to NULL: the references must survive both ways.
"""

from __future__ import annotations

from sqlalchemy import text

from system.db import migrate
from system.db.engine import create_engine

GAME = "INSERT INTO boardgames (bgg_id, title, categories, mechanics, designers, publishers)"
RUN = (
    "INSERT INTO background_task_runs (record_id, task_type, game_id, outcome, attempts,"
    " started_at, finished_at, duration_ms)"
)


async def test_revision_0005_keeps_the_data_and_stops_id_reuse(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await migrate.upgrade(engine, "0004_failure_counts")
        async with engine.begin() as conn:
            for bgg_id in (1, 2):
                await conn.execute(text(f"{GAME} VALUES ({bgg_id}, 'g', '[]', '[]', '[]', '[]')"))
            await conn.execute(
                text(
                    "INSERT INTO background_task_failures (task_type, game_id, error_message)"
                    " SELECT 'thumbnail_download', id, 'x' FROM boardgames"
                )
            )
            now = "NOW()" if engine.dialect.name == "postgresql" else "CURRENT_TIMESTAMP"
            await conn.execute(
                text(
                    f"{RUN} SELECT 'r' || id, 't', id, 'success', 1, {now}, {now}, 1"  # noqa: S608
                    " FROM boardgames"
                )
            )

        async def references() -> list[tuple[int | None, int | None]]:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT f.game_id, r.game_id FROM background_task_failures AS f"
                        " JOIN background_task_runs AS r ON r.record_id = 'r' || f.game_id"
                        " ORDER BY f.id"
                    )
                )
                return [(a, b) for a, b in rows.all()]

        before = await references()
        assert before == [(1, 1), (2, 2)]

        await migrate.upgrade(engine)
        assert await references() == before
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM boardgames WHERE id = 2"))
            new_id = (
                await conn.execute(
                    text(f"{GAME} VALUES (3, 'g', '[]', '[]', '[]', '[]') RETURNING id")
                )
            ).scalar_one()
            assert new_id == 3  # not 2 again
            await conn.execute(
                text(
                    f"{RUN} SELECT 'late', 't', NULL, 'superseded', 1,"  # noqa: S608
                    " started_at, finished_at,"
                    " 1 FROM background_task_runs WHERE record_id = 'r1'"
                )
            )

        await migrate.downgrade(engine, "0004_failure_counts")
        async with engine.connect() as conn:
            outcomes = (await conn.execute(text("SELECT outcome FROM background_task_runs"))).all()
        assert sorted(o for (o,) in outcomes) == ["success", "success"]
        assert (await references())[0] == (1, 1)
        await migrate.upgrade(engine)
        assert (await references())[0] == (1, 1)
    finally:
        await engine.dispose()
