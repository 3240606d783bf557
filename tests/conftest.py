"""Shared fixtures: isolated databases on SQLite and (when configured) PostgreSQL, apps, clients.

Every test that takes `database_url` runs once per backend: SQLite always, PostgreSQL when
`TEST_DATABASE_URL` is set (e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/test`). The
PostgreSQL runs use a database of their own, created for this test session and dropped after,
so the shared `test` database is never touched.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import hypothesis
import pytest
from fastapi import FastAPI
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import text
from sqlalchemy.engine import make_url

from system.app import create_app
from system.config import Settings
from system.container import Overrides, Services
from system.db import migrate
from system.db.engine import create_engine
from tests.services import TEST_REDIS_URL, missing, port_open

if TYPE_CHECKING:
    from tests.fakes import Upstreams

pytest_plugins = ["tests.fakes", "tests.support.browser"]

# Property tests judge what was generated, never how fast this machine ran it (no per-example
# deadline), and keep no example database (tests write only under tmp_path).
hypothesis.settings.register_profile("project", deadline=None, database=None)
hypothesis.settings.load_profile("project")
# Its own caches go to the system's temporary folder, not the checkout; set before any test
# collects, since Hypothesis writes them while collecting.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"bgg-reliability-hypothesis-{os.getuid()}")

ADMIN_TOKEN = "test-admin-token"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "fixtures"

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not TEST_DATABASE_URL, reason="TEST_DATABASE_URL not set"),
        ],
    ),
]

TABLES = ("background_jobs", "background_task_runs", "background_task_failures", "boardgames")

# Whole chaos runs, Locust runs and notebook pipelines: their own subprocess limits go up to
# 300 s, and must fire first to say what hung. Every other test has pyproject.toml's `timeout`.
SLOW_TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A `slow` test gets SLOW_TIMEOUT, unless it names its own with @pytest.mark.timeout."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(autouse=True)
def _own_spool_and_thumbnails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test shares the default `./var/` spool or thumbnail folder with another.

    A spool left there by one test (or by a test run in another process) would be replayed
    into the next test's database at start-up.
    """
    monkeypatch.setenv("SPOOL_PATH", str(tmp_path / "default-spool.jsonl"))
    monkeypatch.setenv("THUMBNAIL_DIR", str(tmp_path / "default-thumbnails"))


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: nothing read from a `.env` file, admin token known."""
    values: dict[str, Any] = {
        "admin_tokens": ADMIN_TOKEN,
        "environment": "test",
        "bgg_base_url": "http://127.0.0.1:9/xmlapi2",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def _admin_sql(server_url: str, statement: str) -> None:
    engine = create_engine(server_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


class PostgresDatabases:
    """Creates throw-away PostgreSQL databases next to the one TEST_DATABASE_URL names."""

    def __init__(self, base_url: str) -> None:
        self.base_url = make_url(base_url)
        self.created: list[str] = []

    def create(self, *, migrated: bool) -> str:
        name = f"bggrel_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin_sql(self.base_url.render_as_string(False), f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        url = self.base_url.set(database=name).render_as_string(hide_password=False)
        if migrated:
            asyncio.run(migrate_database(url))
        return url

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(
                _admin_sql(
                    self.base_url.render_as_string(False),
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                )
            )


async def migrate_database(url: str) -> None:
    """Bring the database at `url` to the newest schema."""
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _truncate(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    """Factory of fresh PostgreSQL databases, all dropped at the end of the session."""
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    databases = PostgresDatabases(TEST_DATABASE_URL)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_session_url(postgres_databases: PostgresDatabases) -> str:
    """One migrated PostgreSQL database for the session; tests truncate it before use."""
    return postgres_databases.create(migrated=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test."""
    return str(request.param)


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with no tables at all (for migration tests)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create(migrated=False)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the backend under test."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        asyncio.run(migrate_database(url))
        return url
    url = str(request.getfixturevalue("postgres_session_url"))
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an isolated app on the backend under test."""
    return make_settings(
        database_url=database_url,
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app with its lifespan running."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class NoSleep:
    """Injected instead of `asyncio.sleep`: retry waits are recorded, not waited."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@dataclass
class ServiceUnderTest:
    """An app with its lifespan running, a client, and what it was built with."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    sleeps: NoSleep

    @property
    def services(self) -> Services:
        """The app's long-lived objects."""
        services: Services = self.app.state.services
        return services

    async def import_game(self, bgg_id: int) -> httpx.Response:
        """POST the admin import route."""
        return await self.client.post(
            f"/api/admin/games/import/{bgg_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )

    async def admin_get(self, path: str, **params: Any) -> httpx.Response:
        """GET an admin route."""
        return await self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )


ServiceFactory = Callable[..., AbstractAsyncContextManager[ServiceUnderTest]]


@pytest.fixture
def make_service(settings: Settings, upstreams: Upstreams, tmp_path: Path) -> ServiceFactory:
    """Build a service against the fake BGG and CDN; keyword arguments override settings."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[ServiceUnderTest]:
        values = settings.model_dump()
        values.update(
            bgg_base_url=upstreams.bgg_base_url,
            image_allowed_hosts=[f"127.0.0.1:{upstreams.cdn.port}"],
            admin_tokens=ADMIN_TOKEN,
        )
        values.update(overrides)
        service_settings = make_settings(**values)
        sleeps = NoSleep()
        app = create_app(service_settings, overrides=Overrides(sleep=sleeps))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield ServiceUnderTest(app, c, service_settings, sleeps)

    return build


@pytest.fixture
async def service(make_service: ServiceFactory) -> AsyncIterator[ServiceUnderTest]:
    """The service with default settings against the fake BGG and CDN."""
    async with make_service() as built:
        yield built


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis (TEST_REDIS_URL); tests use keys under a namespace of their own."""
    url = urlsplit(TEST_REDIS_URL)
    if not port_open(url.hostname or "127.0.0.1", url.port or 6379):
        missing(f"no Redis at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


@pytest.fixture
def redis_namespace() -> str:
    """A key prefix no other test run uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Headers that authorise an admin request."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
