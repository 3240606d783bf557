"""Read-only connections to the service's database, from the URLs the service uses.

The service's URLs name async drivers (`sqlite+aiosqlite:///var/bgg.db`,
`postgresql+asyncpg://user@host:5432/db`); a notebook runs inside an event loop of its own, so
the analysis reads through SQLAlchemy's synchronous drivers instead: the standard library's
`sqlite3` (the file opened read-only, never created) and psycopg 3 for PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from notebooks.reliability.errors import InputError
from notebooks.reliability.paths import locate

FAILURES_TABLE = "background_task_failures"
RUNS_TABLE = "background_task_runs"
GAMES_TABLE = "boardgames"

_POSTGRES_DRIVERS = {
    "postgresql",
    "postgres",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}
_SQLITE_DRIVERS = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}


def sync_url(url: str) -> URL:
    """The synchronous, read-only equivalent of a service database URL.

    Raises `InputError` for anything but SQLite and PostgreSQL URLs, and for a SQLite file that
    does not exist (connecting would create an empty one).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(
            f"database URL {url!r} is not a URL: expected sqlite+aiosqlite:///PATH or "
            "postgresql+asyncpg://USER@HOST:PORT/DB"
        ) from None
    driver = parsed.drivername
    if driver in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if driver in _SQLITE_DRIVERS:
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise InputError(f"database URL {url!r} names no SQLite file")
        path = locate(database)
        if not path.is_file():
            raise InputError(f"database {url!r}: no such SQLite file {path}")
        return URL.create(
            "sqlite", database=f"file:{path.resolve()}?mode=ro", query={"uri": "true"}
        )
    raise InputError(
        f"database URL {url!r}: unsupported driver {driver!r}: expected SQLite or PostgreSQL"
    )


def open_engine(url: str) -> Engine:
    """A synchronous engine on `url` after checking that the failure table is there.

    Raises `InputError` when the database cannot be reached or was never migrated.
    """
    engine = create_engine(sync_url(url), pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(f"cannot read database {safe_url(url)}: {reason}") from None
    if FAILURES_TABLE not in tables:
        engine.dispose()
        raise InputError(
            f"database {safe_url(url)} has no {FAILURES_TABLE} table: expected the service's "
            "database, migrated by `python -m system migrate`"
        )
    return engine


def has_table(engine: Engine, name: str) -> bool:
    """Whether the database has table `name`."""
    with engine.connect() as conn:
        return name in set(inspect(conn).get_table_names())


def safe_url(url: str) -> str:
    """`url` without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a URL>"
