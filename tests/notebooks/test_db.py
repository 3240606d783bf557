"""`db.sync_url`: the service's async URLs as synchronous, read-only ones; and `safe_url`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from notebooks.reliability.db import safe_url, sync_url
from notebooks.reliability.errors import InputError
from notebooks.reliability.paths import REPO


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://bgg:secret@db.example:5433/bgg",
        "postgresql://bgg:secret@db.example:5433/bgg",
        "postgres://bgg:secret@db.example:5433/bgg",
        "postgresql+psycopg2://bgg:secret@db.example:5433/bgg",
        "postgresql+psycopg://bgg:secret@db.example:5433/bgg",
    ],
)
def test_postgresql_urls_use_psycopg(url: str) -> None:
    converted = sync_url(url)
    assert converted.drivername == "postgresql+psycopg"
    assert (converted.username, converted.password) == ("bgg", "secret")
    assert (converted.host, converted.port, converted.database) == ("db.example", 5433, "bgg")


@pytest.mark.parametrize("driver", ["sqlite+aiosqlite", "sqlite", "sqlite+pysqlite"])
def test_a_sqlite_file_is_opened_read_only(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "bgg.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    converted = sync_url(f"{driver}:///{path}")
    assert converted.drivername == "sqlite"
    assert converted.database == f"file:{path.resolve()}?mode=ro"
    assert converted.query == {"uri": "true"}
    engine = create_engine(converted)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar() == 1
            with pytest.raises(OperationalError, match="readonly"):
                conn.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        engine.dispose()


def test_a_relative_sqlite_path_is_looked_up_here_then_in_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite+aiosqlite:///var/bgg.db` (the service's default) means the same file whether
    the kernel starts in notebooks/ or in the repository's root."""
    (tmp_path / "var").mkdir()
    sqlite3.connect(tmp_path / "var" / "bgg.db").close()
    monkeypatch.chdir(tmp_path)
    converted = sync_url("sqlite+aiosqlite:///var/bgg.db")
    assert converted.database == f"file:{(tmp_path / 'var' / 'bgg.db').resolve()}?mode=ro"
    with pytest.raises(InputError) as caught:
        sync_url("sqlite+aiosqlite:///var/nb-test-absent.db")
    assert str(caught.value).endswith(f"no such SQLite file {REPO / 'var' / 'nb-test-absent.db'}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a URL: expected sqlite+aiosqlite:///PATH or postgresql+asyncpg"),
        ("mysql+aiomysql://u@h/db", "unsupported driver 'mysql+aiomysql': expected SQLite"),
        ("sqlite+aiosqlite://", "names no SQLite file"),
        ("sqlite+aiosqlite:///:memory:", "names no SQLite file"),
        ("sqlite+aiosqlite:////nonexistent/bgg.db", "no such SQLite file /nonexistent/bgg.db"),
    ],
)
def test_what_is_refused(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("+", r"\+").replace("(", r"\(")):
        sync_url(url)


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such SQLite file"):
        sync_url(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new.db").exists()


def test_safe_url_hides_the_password() -> None:
    assert safe_url("postgresql+asyncpg://bgg:secret@h/db") == "postgresql+asyncpg://bgg:***@h/db"
    assert safe_url("not a url") == "<not a URL>"
