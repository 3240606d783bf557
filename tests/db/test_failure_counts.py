"""The trigger-kept failure counts always equal a COUNT(*) of the table (both backends)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text, update

from system.db.database import Database
from system.db.failures import FailureRepository
from system.db.models import BackgroundTaskFailure

TYPES = st.sampled_from(["thumbnail_download", "bgg_import"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), TYPES, st.one_of(st.none(), st.booleans()), st.integers(1, 5)),
        st.tuples(st.just("resolve"), TYPES, st.booleans(), st.integers(1, 5)),
        st.tuples(st.just("retype"), TYPES, st.booleans(), st.integers(1, 5)),
        st.tuples(st.just("delete"), TYPES, st.booleans(), st.integers(1, 5)),
    ),
    max_size=12,
)


async def _apply(database: Database, op: tuple[str, str, bool | None, int]) -> None:
    kind, task_type, flag, n = op
    table = BackgroundTaskFailure
    async with database.session() as session:
        if kind == "insert":
            session.add_all(
                table(task_type=task_type, error_message="e", resolved=flag) for _ in range(n)
            )
        elif kind == "resolve":
            await session.execute(
                update(table).where(table.task_type == task_type).values(resolved=flag)
            )
        elif kind == "retype":
            other = "bgg_import" if task_type == "thumbnail_download" else "thumbnail_download"
            await session.execute(
                update(table).where(table.task_type == task_type).values(task_type=other)
            )
        else:
            ids = select(table.id).where(table.task_type == task_type).limit(n)
            await session.execute(delete(table).where(table.id.in_(ids.scalar_subquery())))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
async def test_counts_follow_every_change(
    database_url: str, ops: list[tuple[str, str, bool | None, int]]
) -> None:
    database = Database(database_url)
    try:
        async with database.session() as session:
            await session.execute(delete(BackgroundTaskFailure))
        for op in ops:
            await _apply(database, op)
        async with database.session() as session:
            summary = await FailureRepository(session).summary()
            total = await session.scalar(select(func.count()).select_from(BackgroundTaskFailure))
            rows = await session.execute(
                select(BackgroundTaskFailure.task_type, func.count())
                .where(func.coalesce(BackgroundTaskFailure.resolved, False).is_(False))
                .group_by(BackgroundTaskFailure.task_type)
            )
            unresolved = dict(rows.all())
        assert summary.total == total
        assert summary.unresolved_by_type == unresolved
    finally:
        await database.close()


async def test_truncate_resets_the_counts(database_url: str, backend: str) -> None:
    database = Database(database_url)
    try:
        async with database.session() as session:
            session.add(BackgroundTaskFailure(task_type="t", error_message="e"))
        async with database.session() as session:
            if backend == "postgresql":
                await session.execute(text("TRUNCATE background_task_failures CASCADE"))
            else:
                await session.execute(delete(BackgroundTaskFailure))
        async with database.session() as session:
            assert (await FailureRepository(session).summary()).total == 0
    finally:
        await database.close()
