"""Fixtures for the notebook analysis: migrated databases with chosen rows, the generated data
set (made once per session by driving the real service), throw-away PostgreSQL databases.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import pytest

from tests.conftest import migrate_database
from tests.services import missing

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")

FAILURE_COLUMNS = (
    "id",
    "task_type",
    "game_id",
    "error_message",
    "error_type",
    "stack_trace",
    "retry_count",
    "url",
    "resolved",
    "resolved_at",
    "created_at",
)
RUN_COLUMNS = (
    "id",
    "record_id",
    "task_type",
    "game_id",
    "failure_id",
    "outcome",
    "attempts",
    "trigger",
    "error_type",
    "started_at",
    "finished_at",
    "duration_ms",
    "job_id",
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(migrate_database(f"sqlite+aiosqlite:///{path}"))
    return path


def _sql_value(value: Any) -> Any:
    if isinstance(value, datetime):  # naive UTC text, as the service stores it
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, bool):
        return int(value)
    return value


@dataclass
class SqliteDb:
    """A migrated SQLite database file to put rows in."""

    path: Path

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (datetimes as naive text, as the service stores them)."""
        if not rows:
            return
        with sqlite3.connect(self.path) as conn:
            conn.execute("PRAGMA foreign_keys=OFF")
            for row in rows:
                names = ", ".join(f'"{k}"' for k in row)
                marks = ", ".join("?" for _ in row)
                conn.execute(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                    [_sql_value(v) for v in row.values()],
                )
        return

    def games(self, count: int) -> None:
        """`count` games with ids 1..count."""
        self.insert(
            "boardgames",
            [
                {
                    "id": i,
                    "bgg_id": 1000 + i,
                    "title": f"Game {i}",
                    "categories": "[]",
                    "mechanics": "[]",
                    "designers": "[]",
                    "publishers": "[]",
                    "created_at": "2026-11-01 00:00:00",
                    "updated_at": "2026-11-01 00:00:00",
                }
                for i in range(1, count + 1)
            ],
        )


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Callable[[], SqliteDb]:
    """A factory of fresh migrated SQLite databases."""
    counter = iter(range(1_000_000))

    def make() -> SqliteDb:
        path = tmp_path / f"db{next(counter)}.db"
        shutil.copy(sqlite_template, path)
        return SqliteDb(path)

    return make


# -- PostgreSQL -------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """Creates throw-away databases next to TEST_DATABASE_URL and drops them."""

    base_url: str
    created: list[str]

    def database(self, *, migrated: bool = True) -> str:
        from sqlalchemy.engine import make_url

        name = f"nbtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = make_url(self.base_url).set(database=name).render_as_string(hide_password=False)
        if migrated:
            asyncio.run(migrate_database(url))
        return url

    def _admin(self, sql: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        dsn = make_url(self.base_url).set(drivername="postgresql")
        with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(sql.encode())

    def insert(self, url: str, table: str, rows: Sequence[dict[str, Any]]) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        if not rows:
            return
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for row in rows:
                names = ", ".join(f'"{k}"' for k in row)
                marks = ", ".join("%s" for _ in row)
                conn.execute(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})".encode(),  # noqa: S608
                    [
                        v.replace(tzinfo=None) if isinstance(v, datetime) else v
                        for v in row.values()
                    ],
                )

    def truncate(self, url: str) -> None:
        """Empty the service's tables (the counts table follows, by its trigger)."""
        import psycopg
        from sqlalchemy.engine import make_url

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                b"TRUNCATE background_task_runs, background_task_failures, boardgames"
                b" RESTART IDENTITY CASCADE"
            )

    def drop_all(self) -> None:
        for name in self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Throw-away PostgreSQL databases (skipped without TEST_DATABASE_URL, unless
    TEST_REQUIRE_SERVICES=1, which makes that a failure)."""
    if not TEST_DATABASE_URL:
        missing("TEST_DATABASE_URL not set")
    assert TEST_DATABASE_URL is not None
    server = PostgresServer(TEST_DATABASE_URL, [])
    yield server
    server.drop_all()


# -- the generated data set -------------------------------------------------------------------

#: Set by conftest's collection hook when a collected test uses `generated`.
WANTS_PIPELINE = pytest.StashKey[bool]()

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" time="1.5">
<testcase classname="tests.api.test_health" name="test_live" time="0.1"/>
<testcase classname="tests.bgg.test_parser" name="test_brass" time="0.1"/>
<testcase classname="tests.notebooks.test_tables" name="test_oracle" time="1.2"/>
</testsuite></testsuites>"""


@dataclass(frozen=True)
class Generated:
    """`python -m notebooks` run once on a generated data set."""

    output: Path
    result: subprocess.CompletedProcess[str]

    @property
    def data(self) -> Path:
        return self.output / "data"


@dataclass
class Pipeline:
    """The whole pipeline in the background: generate a small data set with the real service,
    run the three notebooks on it (about 35 s)."""

    output: Path
    process: subprocess.Popen[str]
    stdout: Path
    stderr: Path

    def wait(self, timeout: float = 300) -> Generated:
        code = self.process.wait(timeout)
        return Generated(
            self.output,
            subprocess.CompletedProcess(
                self.process.args, code, self.stdout.read_text(), self.stderr.read_text()
            ),
        )

    def stop(self) -> None:
        """SIGTERM (the command line stops the service and kernels), then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session", autouse=True)
def pipeline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline | None]:
    """Started with the first notebook test when a test will need `generated` (those tests
    are moved to the end of the notebook tests), so the ~35 s overlap with the others."""
    if not request.config.stash.get(WANTS_PIPELINE, False):
        yield None
        return
    base = tmp_path_factory.mktemp("notebooks")
    junit = base / "junit.xml"
    junit.write_text(JUNIT, "utf-8")
    output = base / "reports"
    stdout, stderr = base / "stdout.txt", base / "stderr.txt"
    no_reports = base / "no-reports"
    no_reports.mkdir()
    command = [sys.executable, "-m", "notebooks", "--output", str(output), "--tests", str(junit)]
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [*command, "--reports-dir", str(no_reports)],  # not this checkout's reports/
            cwd=REPO,
            stdout=out,
            stderr=err,
            text=True,
        )
    running = Pipeline(output, process, stdout, stderr)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def generated(pipeline: Pipeline | None) -> Generated:
    """The pipeline's outcome (waits for it)."""
    assert pipeline is not None, "the collection hook did not see a test using `generated`"
    return pipeline.wait()
