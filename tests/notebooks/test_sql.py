"""`sql.Dialect`: each SQL fragment run on its own against SQLite (times stored as text in the
shapes the service and exports write) and PostgreSQL (`TIMESTAMP` columns), with the same
answers from both; and `dialect_for`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from notebooks.reliability.sql import POSTGRESQL, SQLITE, Dialect, dialect_for
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


def ids(db: tuple[Dialect, Engine], where: str, **params: Any) -> list[int]:
    _, engine = db
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id FROM t WHERE {where} ORDER BY id"), params)  # noqa: S608
        return [int(r[0]) for r in rows]


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
    assert POSTGRESQL.time_at_least("created_at", "since") == "created_at >= :since"
    assert POSTGRESQL.time_before("created_at", "until") == "created_at < :until"
    assert POSTGRESQL.time_after("created_at", "now") == "created_at > :now"
    assert POSTGRESQL.column_before("a", "b") == "a < b"
    assert SQLITE.time_at_least("c", "p") == "julianday(c) >= julianday(:p)"
    assert SQLITE.column_before("a", "b") == "julianday(a) < julianday(b)"


def test_time_filters(db: tuple[Dialect, Engine]) -> None:
    d, _ = db
    noon = d.param_time(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    # Row 4's own instant, given in another zone: at least it, not after it.
    half = d.param_time(
        datetime(2026, 11, 30, 13, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=1)))
    )
    assert ids(db, d.time_at_least("created_at", "p"), p=noon) == [1, 2, 3, 4]
    assert ids(db, d.time_before("created_at", "p"), p=noon) == [5]
    assert ids(db, d.time_after("created_at", "p"), p=noon) == [2, 4]
    assert ids(db, d.time_after("created_at", "p"), p=half) == []
    assert ids(db, d.time_at_least("created_at", "p"), p=half) == [4]


def test_column_before(db: tuple[Dialect, Engine]) -> None:
    d, _ = db
    # Row 2's resolved_at (13:00:59.999+01:00) is the same instant as its created_at.
    assert ids(db, d.column_before("created_at", "resolved_at")) == [1, 4]


@pytest.mark.parametrize("bucket", [1, 60, 3600])
def test_buckets_start_on_their_edge(db: tuple[Dialect, Engine], bucket: int) -> None:
    d, engine = db
    param: int | float = float(bucket) if d.name == "postgresql" else bucket
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {d.bucket_epoch('b')}, n FROM (SELECT {d.bucket_key('created_at')} AS b,"  # noqa: S608
                " COUNT(*) AS n FROM t GROUP BY b) AS s ORDER BY 1"
            ),
            {"bucket": param},
        ).all()
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
    with engine.connect() as conn:
        seconds = dict(
            conn.execute(
                text(
                    f"SELECT id, {d.seconds_between('created_at', 'resolved_at')} FROM t"  # noqa: S608
                    " WHERE resolved_at IS NOT NULL"
                )
            ).all()
        )
    assert seconds == {1: pytest.approx(9.5), 2: pytest.approx(0.0), 4: pytest.approx(3600.0)}
    assert ids(db, d.shorter_than("created_at", "resolved_at", 10)) == [1, 2]
    assert ids(db, d.shorter_than("created_at", "resolved_at", 9)) == [2]
    assert ids(db, d.shorter_than("created_at", "resolved_at", 3601)) == [1, 2, 4]


def test_resolved_and_unresolved(db: tuple[Dialect, Engine]) -> None:
    d, _ = db
    assert ids(db, d.resolved()) == [1, 2]
    # NULL `resolved` counts as unresolved.
    assert ids(db, d.unresolved()) == [3, 4, 5]
    assert ids(db, d.unresolved("t")) == [3, 4, 5]
    assert d.unresolved("f").count("f.resolved") >= 1


def test_sample(db: tuple[Dialect, Engine]) -> None:
    d, engine = db
    with engine.connect() as conn:
        everything = conn.execute(text(f"SELECT id FROM {d.sample('t', 100.0)}")).all()  # noqa: S608
        some = conn.execute(text(f"SELECT id FROM {d.sample('t', 30.0)}")).all()  # noqa: S608
    assert sorted(r[0] for r in everything) == [1, 2, 3, 4, 5]
    assert {r[0] for r in some} <= {1, 2, 3, 4, 5}
    assert "REPEATABLE" in POSTGRESQL.sample("t", 1.0)
    assert "% 3 = 0" in SQLITE.sample("t", 30.0)  # about one row in three
