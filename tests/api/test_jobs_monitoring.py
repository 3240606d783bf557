"""`GET /api/admin/monitoring/jobs`: counts, oldest due job, filters and keyset paging
(issue 11, item 4). Real app and database, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from system.db import jobs
from system.db.models import BackgroundJob
from system.tasks.imports import TASK_TYPE, enqueue_import
from system.tasks.thumbnails import TASK_TYPE as THUMBNAIL_TASK
from tests.conftest import ServiceFactory, ServiceUnderTest

ROUTE = "/api/admin/monitoring/jobs"


@pytest.fixture
async def idle(make_service: ServiceFactory) -> AsyncIterator[ServiceUnderTest]:
    """A service whose workers never claim: jobs stay as the test writes them."""
    async with make_service(background_workers_in_process=False) as service:
        yield service


async def _queue_imports(service: ServiceUnderTest, *bgg_ids: int) -> list[int]:
    ids = []
    for bgg_id in bgg_ids:  # one transaction each: distinct created_at on both backends
        async with service.services.database.session() as session:
            ids.append((await enqueue_import(session, bgg_id, max_attempts=3)).id)
    return ids


async def _set_status(service: ServiceUnderTest, job_id: int, status: str) -> None:
    async with service.services.database.session() as session:
        await session.execute(
            update(BackgroundJob).where(BackgroundJob.id == job_id).values(status=status)
        )


async def test_counts_by_type_and_status_and_the_oldest_due_job(idle: ServiceUnderTest) -> None:
    first, second, third = await _queue_imports(idle, 1, 2, 3)
    await _set_status(idle, first, "done")
    await _set_status(idle, second, "failed")
    async with idle.services.database.session() as session:
        # Due for 100 s already, and one not due for an hour (a breaker wait): not a backlog.
        await jobs.enqueue(
            session,
            task_type=THUMBNAIL_TASK,
            payload={"game_id": 1, "url": "http://x/a.png"},
            max_attempts=3,
            delay_seconds=-100,
        )
        await jobs.enqueue(
            session,
            task_type=THUMBNAIL_TASK,
            payload={"game_id": 2, "url": "http://x/b.png"},
            max_attempts=3,
            delay_seconds=3600,
        )
    response = await idle.admin_get(ROUTE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["counts"] == {
        TASK_TYPE: {"done": 1, "failed": 1, "queued": 1},
        THUMBNAIL_TASK: {"queued": 2},
    }
    assert 99 <= body["oldest_queued_age_seconds"] < 200
    assert 99 <= body["oldest_queued_age_seconds_by_type"][THUMBNAIL_TASK] < 200
    assert body["oldest_queued_age_seconds_by_type"][TASK_TYPE] < 60
    assert len(body["jobs"]) == 5 and body["next_cursor"] is None and body["limit"] == 50
    shown = {job["id"]: job for job in body["jobs"]}
    assert shown[third]["payload"] == {"bgg_id": 3}
    assert (shown[third]["status"], shown[third]["attempts"]) == ("queued", 0)
    assert shown[third]["created_at"].endswith("Z")


async def test_nothing_due_means_no_oldest_age(idle: ServiceUnderTest) -> None:
    body = (await idle.admin_get(ROUTE)).json()
    assert (body["counts"], body["oldest_queued_age_seconds"], body["jobs"]) == ({}, None, [])


async def test_pages_are_newest_first_without_gaps_or_repeats(idle: ServiceUnderTest) -> None:
    ids = await _queue_imports(idle, *range(1, 8))
    async with idle.services.database.session() as session:  # seven more in one transaction
        for bgg_id in range(8, 15):
            ids.append((await enqueue_import(session, bgg_id, max_attempts=3)).id)
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (await idle.admin_get(ROUTE, **params)).json()
        seen += [job["id"] for job in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_filters_by_status_and_task_type(idle: ServiceUnderTest) -> None:
    first, second, third = await _queue_imports(idle, 1, 2, 3)
    await _set_status(idle, second, "done")
    async with idle.services.database.session() as session:
        thumbnail = await jobs.enqueue(
            session,
            task_type=THUMBNAIL_TASK,
            payload={"game_id": 1, "url": "http://x/a.png"},
            max_attempts=3,
        )

    async def listed(**params: object) -> list[int]:
        response = await idle.admin_get(ROUTE, **params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    assert await listed(status="queued") == [thumbnail.id, third, first]
    assert await listed(status="done") == [second]
    assert await listed(task_type=TASK_TYPE, status="queued") == [third, first]
    assert await listed(task_type=THUMBNAIL_TASK) == [thumbnail.id]
    assert await listed(task_type="no_such_task") == []
    # Paging keeps the filter.
    page = (await idle.admin_get(ROUTE, task_type=TASK_TYPE, limit=1)).json()
    rest = await listed(task_type=TASK_TYPE, cursor=page["next_cursor"])
    assert [job["id"] for job in page["jobs"]] + rest == [third, second, first]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "waiting"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHw5OTk5OTk5OTk5OTk"}, "cursor"),
        ({"task_type": "a\x00b"}, "task_type"),
        ({"task_type": ""}, "task_type"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(
    idle: ServiceUnderTest, params: dict[str, object], field: str
) -> None:
    response = await idle.admin_get(ROUTE, **params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert [f["field"] for f in error["fields"]] == [field]
    assert field in error["message"]


async def test_admins_only(idle: ServiceUnderTest) -> None:
    response = await idle.client.get(ROUTE, params={"limit": 0})
    assert response.status_code == 401
