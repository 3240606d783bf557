"""`sql.Dialect`: each SQLAlchemy Core expression run on its own against SQLite (times stored as
text in the shapes the service and exports write) and PostgreSQL (`TIMESTAMP` columns), with
the same answers from both; `count_if` and `dialect_for`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Engine,
    column,
    create_engine,
    func,
    select,
    table,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from notebooks.reliability.sql import POSTGRESQL, SQLITE, Dialect, count_if, dialect_for
from tests.notebooks.support import PostgresServer

#: (id, created_at, resolved_at, resolved); times as SQLite keeps them, in every shape it may
#: find: naive with a space, with `T` and `Z`, with an offset, with fractions of a second.
ROWS: tuple[tuple[int, str, str | None, bool | None], ...] = (
    (1, "2026-11-30 12:00:00", "2026-11-30 12:00:09.5", True),
    (2, "2026-11-30T12:00:59.999Z", "2026-11-30T13:00:59.999+01:00", True),
    (3, "2026-11-30T13:00:00+01:00", None, False),  # 12:00:00 UTC, on a bucket's edge
    (4, "2026-11-30 12:30:00.250", "2026-11-30 13:30:00.250", None),
    (5, "2026-11-30 11:59:59.999", None, None),
)


#: The rows' table, as the expressions see it.
T = table("t", column("id"), column("created_at"), column("resolved_at"), column("resolved"))
c = T.c


def utc(value: str) -> datetime:
    """A stored text as a naive UTC datetime (what PostgreSQL's `TIMESTAMP` holds)."""
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


@pytest.fixture(scope="module")
def sqlite() -> Iterator[Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE t (id INTEGER, created_at TEXT, resolved_at TEXT, resolved BOOLEAN)")
        )
        conn.execute(
            text("INSERT INTO t VALUES (:id, :c, :r, :ok)"),
            [{"id": i, "c": c, "r": r, "ok": ok} for i, c, r, ok in ROWS],
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgresql(postgres: PostgresServer) -> Iterator[Engine]:
    url = make_url(postgres.database(migrated=False)).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE t (id INTEGER, created_at TIMESTAMP, resolved_at TIMESTAMP,"
                " resolved BOOLEAN)"
            )
        )
        conn.execute(
            text("INSERT INTO t VALUES (:id, :c, :r, :ok)"),
            [{"id": i, "c": utc(c), "r": utc(r) if r else None, "ok": ok} for i, c, r, ok in ROWS],
        )
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db(request: pytest.FixtureRequest) -> tuple[Dialect, Engine]:
    engine: Engine = request.getfixturevalue(request.param)
    return dialect_for(engine.dialect.name), engine


def ids(db: tuple[Dialect, Engine], where: ColumnElement[bool]) -> list[int]:
    _, engine = db
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(select(c.id).where(where).order_by(c.id))]


def sql(d: Dialect, expression: ClauseElement) -> str:
    """The expression's SQL on `d`'s database, values inline."""
    compiled = expression.compile(
        dialect=create_engine(f"{d.name}://").dialect, compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def test_dialect_for() -> None:
    assert dialect_for("sqlite") is SQLITE
    assert dialect_for("postgresql") is POSTGRESQL
    with pytest.raises(ValueError, match="unsupported database dialect 'mysql'"):
        dialect_for("mysql")


def test_param_time_is_naive_utc() -> None:
    paris = datetime(2026, 11, 30, 13, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=1)))
    assert POSTGRESQL.param_time(paris) == datetime(2026, 11, 30, 12, 0, 0, 500_000)
    assert SQLITE.param_time(paris) == "2026-11-30 12:00:00.500000"
    assert SQLITE.param_time(datetime(2026, 11, 30, 12, tzinfo=UTC)) == "2026-11-30 12:00:00"


def test_postgresql_compares_the_columns_themselves() -> None:
    """So PostgreSQL can use its indexes; SQLite goes through `julianday()`."""
    noon = datetime(2026, 11, 30, 12, tzinfo=UTC)
    pg = sql(POSTGRESQL, POSTGRESQL.time(c.created_at) >= POSTGRESQL.time(noon))
    assert pg == "t.created_at >= '2026-11-30 12:00:00'"
    assert sql(POSTGRESQL, POSTGRESQL.time(c.resolved_at) < POSTGRESQL.time(c.created_at)) == (
        "t.resolved_at < t.created_at"
    )
    lite = sql(SQLITE, SQLITE.time(c.created_at) >= SQLITE.time(noon))
    assert lite == "julianday(t.created_at) >= julianday('2026-11-30 12:00:00')"
    assert sql(SQLITE, SQLITE.time(c.resolved_at) < SQLITE.time(c.created_at)) == (
        "julianday(t.resolved_at) < julianday(t.created_at)"
    )


def test_time_filters(db: tuple[Dialect, Engine]) -> None:
    d, _ = db
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    # Row 4's own instant, given in another zone: at least it, not after it.
    half = datetime(2026, 11, 30, 13, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=1)))
    created = d.time(c.created_at)
    assert ids(db, created >= d.time(noon)) == [1, 2, 3, 4]
    assert ids(db, created < d.time(noon)) == [5]
    assert ids(db, created > d.time(noon)) == [2, 4]
    assert ids(db, created > d.time(half)) == []
    assert ids(db, created >= d.time(half)) == [4]


def test_column_before(db: tuple[Dialect, Engine]) -> None:
    d, _ = db
    # Row 2's resolved_at (13:00:59.999+01:00) is the same instant as its created_at.
    assert ids(db, d.time(c.created_at) < d.time(c.resolved_at)) == [1, 4]


@pytest.mark.parametrize("bucket", [1, 60, 3600])
def test_buckets_start_on_their_edge(db: tuple[Dialect, Engine], bucket: int) -> None:
    d, engine = db
    key = d.bucket(c.created_at, bucket).label("b")
    s = select(key, func.count().label("n")).group_by("b").subquery("s").c
    with engine.connect() as conn:
        rows = conn.execute(select(d.epoch(s.b), s.n).order_by(s.b)).all()
    epoch = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()
    got = {float(start) - epoch: int(n) for start, n in rows}
    expected = {
        1: {-1.0: 1, 0.0: 2, 59.0: 1, 1800.0: 1},
        60: {-60.0: 1, 0.0: 3, 1800.0: 1},
        3600: {-3600.0: 1, 0.0: 4},
    }[bucket]
    assert got == expected


def test_seconds_between_and_shorter_than(db: tuple[Dialect, Engine]) -> None:
    d, engine = db
    between = d.seconds_between(c.created_at, c.resolved_at)
    with engine.connect() as conn:
        query = select(c.id, between).where(c.resolved_at.is_not(None))
        seconds = {int(i): float(s) for i, s in conn.execute(query)}
    assert seconds == {1: pytest.approx(9.5), 2: pytest.approx(0.0), 4: pytest.approx(3600.0)}
    assert ids(db, d.shorter_than(c.created_at, c.resolved_at, 10)) == [1, 2]
    assert ids(db, d.shorter_than(c.created_at, c.resolved_at, 9)) == [2]
    assert ids(db, d.shorter_than(c.created_at, c.resolved_at, 3601)) == [1, 2, 4]
    # Up to a bound instant (an age): rows 1, 3 and 5 are 30 min (and 1 ms) old at 12:30.
    half_past = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
    assert ids(db, d.shorter_than(c.created_at, half_past, 1800)) == [2, 4]
    assert ids(db, d.seconds_between(c.created_at, half_past) > 1800) == [5]


def test_resolved_and_unresolved(db: tuple[Dialect, Engine]) -> None:
    d, _ = db
    assert ids(db, d.resolved(T)) == [1, 2]
    # NULL `resolved` counts as unresolved.
    assert ids(db, d.unresolved(T)) == [3, 4, 5]
    assert "f.resolved" in sql(d, d.unresolved(T.alias("f")))


def test_count_if(db: tuple[Dialect, Engine]) -> None:
    d, engine = db
    with engine.connect() as conn:
        counted = conn.execute(select(count_if(d.unresolved(T)), count_if(d.resolved(T)))).one()
    assert tuple(counted) == (3, 2)


def test_sample(db: tuple[Dialect, Engine]) -> None:
    d, engine = db
    everything, some = d.sample(100.0, T), d.sample(30.0, T)
    with engine.connect() as conn:
        all_ids = conn.execute(select(everything.c.id)).all()
        some_ids = conn.execute(select(some.c.id)).all()
    assert sorted(r[0] for r in all_ids) == [1, 2, 3, 4, 5]
    assert {r[0] for r in some_ids} <= {1, 2, 3, 4, 5}
    assert "REPEATABLE (7)" in sql(POSTGRESQL, select(POSTGRESQL.sample(1.0, T).c.id))
    assert "% 3 = 0" in sql(SQLITE, select(SQLITE.sample(30.0, T).c.id))  # one row in three
