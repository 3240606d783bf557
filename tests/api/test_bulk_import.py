"""`POST /api/admin/games/import`: bulk imports are `bgg_import` jobs (issue 11, item 4).

Real app on both backends, the fake BGG and CDN over real sockets.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from system.app import create_app
from system.db.models import BackgroundJob, BackgroundTaskRun, BoardGame
from system.tasks.imports import TASK_TYPE, import_key
from system.tasks.thumbnails import TASK_TYPE as THUMBNAIL_TASK
from tests.api.served import asyncpg_dsn, refuse_commits, served
from tests.conftest import (
    ADMIN_TOKEN,
    ServiceFactory,
    ServiceUnderTest,
    make_settings,
    migrate_database,
)
from tests.fakes import Upstreams
from tests.support.tables import rows

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROUTE = "/api/admin/games/import"


async def bulk(service: ServiceUnderTest, body: Any) -> httpx.Response:
    return await service.client.post(ROUTE, json=body, headers=AUTH)


async def test_a_bulk_import_queues_one_job_per_id_and_the_workers_import_them(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    response = await bulk(service, {"bgg_ids": [28720, 13, 28720, 822]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["count"] == 3
    assert [job["bgg_id"] for job in body["jobs"]] == [28720, 13, 822]  # request order
    assert {(job["status"], job["existing"]) for job in body["jobs"]} <= {
        ("queued", False), ("running", False), ("done", False),
    }  # fmt: skip
    assert len({job["job_id"] for job in body["jobs"]}) == 3
    await service.services.settle()
    games = {game.bgg_id: game for game in await rows(service, BoardGame)}
    assert set(games) == {28720, 13, 822}
    jobs = {job.id: job for job in await rows(service, BackgroundJob)}
    for answered in body["jobs"]:
        job = jobs[answered["job_id"]]
        assert (job.task_type, job.payload, job.status, job.attempts) == (
            TASK_TYPE, {"bgg_id": answered["bgg_id"]}, "done", 1,
        )  # fmt: skip
        assert job.dedupe_key == import_key(answered["bgg_id"])
    # Each game's thumbnail job was written by its import's finish, and ran.
    thumbnails = [job for job in jobs.values() if job.task_type == THUMBNAIL_TASK]
    assert sorted(job.payload["game_id"] for job in thumbnails) == sorted(
        game.id for game in games.values()
    )
    runs = [run for run in await rows(service, BackgroundTaskRun) if run.task_type == TASK_TYPE]
    assert sorted((run.job_id, run.outcome) for run in runs) == sorted(
        (job["job_id"], "success") for job in body["jobs"]
    )
    assert {run.game_id for run in runs} == {game.id for game in games.values()}
    assert upstreams.thing_requests() == 3


async def test_an_id_already_queued_returns_its_job(make_service: ServiceFactory) -> None:
    async with make_service(background_workers_in_process=False) as service:
        first = (await bulk(service, {"bgg_ids": [1, 2]})).json()
        second = await bulk(service, {"bgg_ids": [3, 2]})
        assert second.status_code == 202
        jobs = second.json()["jobs"]
        assert [(j["bgg_id"], j["existing"], j["status"]) for j in jobs] == [
            (3, False, "queued"), (2, True, "queued"),
        ]  # fmt: skip
        assert jobs[1]["job_id"] == first["jobs"][1]["job_id"]
        assert len(await rows(service, BackgroundJob)) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bgg_ids": []}, "bgg_ids"),
        ({"bgg_ids": list(range(1, 502))}, "bgg_ids"),  # over BULK_IMPORT_MAX (500)
        ({"bgg_ids": ["12"]}, "bgg_ids[0]"),
        ({"bgg_ids": [1, 2, True]}, "bgg_ids[2]"),
        ({"bgg_ids": [1, 2, 3, 0]}, "bgg_ids[3]"),
        ({"bgg_ids": [10_000_001]}, "bgg_ids[0]"),  # over BGG_MAX_ID
        ({"bgg_ids": [-5]}, "bgg_ids[0]"),
        ({"bgg_ids": [12.0]}, "bgg_ids[0]"),
        ({"bgg_ids": [None]}, "bgg_ids[0]"),
        ({"bgg_ids": [[1]]}, "bgg_ids[0]"),
        ({"bgg_ids": 12}, "bgg_ids"),
        ({"bgg_ids": "1,2"}, "bgg_ids"),
        ({"bgg_ids": {"a": 1}}, "bgg_ids"),
        ({}, "bgg_ids"),
    ],
    ids=[
        "empty",
        "over-max",
        "string",
        "bool",
        "zero",
        "over-bgg-max-id",
        "negative",
        "float",
        "null",
        "nested-list",
        "not-a-list",
        "string-list",
        "object",
        "missing",
    ],
)
async def test_bad_bodies_are_422_naming_the_field_and_queue_nothing(
    service: ServiceUnderTest, body: dict[str, Any], field: str
) -> None:
    response = await bulk(service, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["fields"]] == [field]
    assert error["fields"][0]["location"] == "body"
    assert field in error["message"]
    assert await rows(service, BackgroundJob) == []


async def test_every_bad_item_is_named_up_to_a_cap(service: ServiceUnderTest) -> None:
    response = await bulk(service, {"bgg_ids": [1, "a", 2, False] + ["x"] * 100})
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert fields[:3] == ["bgg_ids[1]", "bgg_ids[3]", "bgg_ids[4]"]
    assert len(fields) == 20


async def test_the_maximum_is_a_setting(make_service: ServiceFactory) -> None:
    async with make_service(bulk_import_max=3, background_workers_in_process=False) as service:
        assert (await bulk(service, {"bgg_ids": [1, 2, 3]})).status_code == 202
        response = await bulk(service, {"bgg_ids": [4, 5, 6, 7]})
        assert response.status_code == 422
        assert "BULK_IMPORT_MAX" in response.json()["error"]["message"]
        # Duplicates count once: three distinct ids are within the maximum...
        assert (await bulk(service, {"bgg_ids": [1, 1, 2]})).status_code == 202


async def test_an_unauthenticated_caller_learns_nothing_about_the_body(
    service: ServiceUnderTest,
) -> None:
    for body in ({"bgg_ids": ["x"]}, {"bgg_ids": [1]}):
        response = await service.client.post(ROUTE, json=body)
        assert response.status_code == 401
    assert await rows(service, BackgroundJob) == []


async def test_the_limit_is_documented_in_openapi(service: ServiceUnderTest) -> None:
    schema = service.app.openapi()
    operation = schema["paths"][ROUTE]["post"]
    assert "BULK_IMPORT_MAX" in operation["description"]
    assert "500" in operation["description"]
    assert "202" in operation["responses"]


async def _job_count(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM background_jobs"))
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_a_database_refusing_connections_is_503_and_nothing_is_queued(
    own_postgres: str, tmp_path: Path
) -> None:
    name = make_url(own_postgres).database
    settings = make_settings(
        database_url=own_postgres,
        database_connect_timeout=2,
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
        background_workers_in_process=False,
    )
    dsn = asyncpg_dsn(own_postgres)
    admin_dsn = asyncpg_dsn(make_url(own_postgres).set(database="postgres").render_as_string(False))
    admin = await asyncpg.connect(admin_dsn)
    try:
        async with served(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                response = await client.post(ROUTE, json={"bgg_ids": [1, 2, 3]}, headers=AUTH)
            finally:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"]["code"] == "database_unavailable"
            assert await _job_count(dsn) == 0
            # Back up: the same request is taken.
            again = await client.post(ROUTE, json={"bgg_ids": [1, 2, 3]}, headers=AUTH)
            assert again.status_code == 202
            assert await _job_count(dsn) == 3
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_a_commit_that_fails_keeps_none_of_the_jobs(
    own_postgres: str, tmp_path: Path
) -> None:
    """All or nothing: every insert succeeded, the one commit did not."""
    settings = make_settings(
        database_url=own_postgres,
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
        background_workers_in_process=False,
    )
    dsn = asyncpg_dsn(own_postgres)
    async with served(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        await refuse_commits(dsn, "background_jobs", "INSERT")
        response = await client.post(ROUTE, json={"bgg_ids": [1, 2, 3, 4]}, headers=AUTH)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert await _job_count(dsn) == 0


async def test_a_locked_sqlite_database_is_503_and_nothing_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    # Migrated beforehand: under load the app's own migration could outlast the short busy
    # timeout below, and the 503 would be the schema's, not the lock's.
    await migrate_database(f"sqlite+aiosqlite:///{path}")
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        database_connect_timeout=0.2,  # SQLite's busy timeout: give up on the lock quickly
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
        background_workers_in_process=False,
    )
    async with served(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            response = await client.post(ROUTE, json={"bgg_ids": [1, 2, 3]}, headers=AUTH)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "database_unavailable"
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM background_jobs").fetchone() == (0,)


async def test_jobs_are_counted_by_their_dedupe_key_once(make_service: ServiceFactory) -> None:
    async with make_service(background_workers_in_process=False) as service:
        response = await bulk(service, {"bgg_ids": [5, 5, 5, 6, 5]})
        assert [j["bgg_id"] for j in response.json()["jobs"]] == [5, 6]
        async with service.services.database.session() as session:
            keys = await session.scalar(select(func.count(func.distinct(BackgroundJob.dedupe_key))))
        assert keys == 2
        assert len(await rows(service, BackgroundJob)) == 2
