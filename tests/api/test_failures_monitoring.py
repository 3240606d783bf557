"""The monitoring endpoints, pinned to the spec's JSON shapes on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from chaos.fakes import FaultRule
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from tests.conftest import ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams
from tests.support.waiting import eventually

T0 = datetime(2025, 12, 20, 10, 30, tzinfo=UTC)
FAILURE_KEYS = {
    "id", "task_type", "game_id", "error_message", "error_type", "retry_count", "url",
    "resolved", "created_at", "resolved_at",
}  # fmt: skip


async def seed(service: ServiceUnderTest) -> int:
    """125 failures (12 unresolved: 8 thumbnail, 4 bgg_import), as in the spec's example."""
    async with service.services.database.session() as session:
        game = BoardGame(bgg_id=123, title="Game")
        session.add(game)
        await session.flush()
        for n in range(125):
            unresolved = n < 12
            session.add(
                BackgroundTaskFailure(
                    task_type="bgg_import" if n % 3 == 0 and unresolved else "thumbnail_download",
                    game_id=game.id,
                    error_message="Network error: Connection timeout",
                    error_type="NetworkError" if n % 2 else "ImageNotFound",
                    retry_count=3,
                    url=f"https://cf.geekdo-images.com/{n}.jpg",
                    resolved=not unresolved,
                    resolved_at=None if unresolved else T0 + timedelta(hours=1),
                    created_at=T0 - timedelta(minutes=n),
                )
            )
        return game.id


async def test_list_answers_in_the_spec_shape(service: ServiceUnderTest) -> None:
    game_id = await seed(service)
    response = await service.admin_get("/api/admin/monitoring/background-failures")
    assert response.status_code == 200
    body = response.json()
    assert {"total_failures", "unresolved_failures", "task_type_counts", "failures"} <= set(body)
    assert body["total_failures"] == 125
    assert body["unresolved_failures"] == 12
    assert body["task_type_counts"] == {"thumbnail_download": 8, "bgg_import": 4}
    assert sum(body["task_type_counts"].values()) == body["unresolved_failures"]
    assert len(body["failures"]) == 50
    first = body["failures"][0]
    assert set(first) >= FAILURE_KEYS
    assert first["created_at"] == "2025-12-20T10:30:00Z"
    assert first["resolved_at"] is None and first["resolved"] is False
    assert first["game_id"] == game_id and first["retry_count"] == 3
    assert first["failure_class"] == "permanent"  # ImageNotFound
    assert body["failures"][1]["failure_class"] == "transient"  # NetworkError
    assert "stack_trace" not in first
    created = [f["created_at"] for f in body["failures"]]
    assert created == sorted(created, reverse=True), "newest first"


async def test_filters_and_paging(service: ServiceUnderTest) -> None:
    await seed(service)
    unresolved = (
        await service.admin_get(
            "/api/admin/monitoring/background-failures", resolved="false", limit=500
        )
    ).json()
    assert len(unresolved["failures"]) == 12
    assert unresolved["total_failures"] == 125  # counts stay whole-table
    imports = (
        await service.admin_get(
            "/api/admin/monitoring/background-failures", task_type="bgg_import", limit=500
        )
    ).json()
    assert {f["task_type"] for f in imports["failures"]} == {"bgg_import"}
    unknown = await service.admin_get(
        "/api/admin/monitoring/background-failures", task_type="nonexistent"
    )
    assert unknown.status_code == 200 and unknown.json()["failures"] == []
    window = (
        await service.admin_get(
            "/api/admin/monitoring/background-failures",
            since="2025-12-20T10:00:00Z",
            until="2025-12-20T10:10:00",  # a naive time is UTC
            limit=500,
        )
    ).json()
    assert len(window["failures"]) == 10

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 40}
        if cursor:
            params["cursor"] = cursor
        page = (
            await service.admin_get("/api/admin/monitoring/background-failures", **params)
        ).json()
        seen += [f["id"] for f in page["failures"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 125 and len(set(seen)) == 125


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"resolved": "maybe"}, "resolved"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"since": "2025-12-21T00:00:00Z", "until": "2025-12-20T00:00:00Z"}, "until"),
    ],
)
async def test_bad_queries_are_422_naming_the_field(
    service: ServiceUnderTest, params: dict[str, object], field: str
) -> None:
    response = await service.admin_get("/api/admin/monitoring/background-failures", **params)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == field


async def test_everything_needs_the_admin_token(service: ServiceUnderTest) -> None:
    base = "/api/admin/monitoring/background-failures"
    assert (await service.client.get(base)).status_code == 401
    assert (await service.client.post(f"{base}/1/resolve")).status_code == 401
    assert (await service.client.post(f"{base}/1/retry")).status_code == 401


async def test_resolve_keeps_the_first_resolved_at(service: ServiceUnderTest) -> None:
    await seed(service)
    listing = await service.admin_get(
        "/api/admin/monitoring/background-failures", resolved="false", limit=1
    )
    failure_id = listing.json()["failures"][0]["id"]
    url = f"/api/admin/monitoring/background-failures/{failure_id}/resolve"
    with time_machine.travel(T0 + timedelta(hours=2), tick=False) as clock:
        first = await service.client.post(url, headers=_auth())
        assert first.status_code == 200
        body = first.json()
        assert body["success"] is True
        assert body["message"] == f"Background failure {failure_id} marked as resolved"
        assert body["failure"]["resolved_at"] == "2025-12-20T12:30:00Z"
        # An hour later: a second resolve that overwrote the time would show it.
        clock.shift(timedelta(hours=1))
        again = (await service.client.post(url, headers=_auth())).json()
    assert again["message"] == f"Background failure {failure_id} was already resolved"
    assert again["failure"]["resolved_at"] == "2025-12-20T12:30:00Z"
    missing = await service.client.post(
        "/api/admin/monitoring/background-failures/999999/resolve", headers=_auth()
    )
    assert missing.status_code == 404


def _auth() -> dict[str, str]:
    from tests.conftest import ADMIN_TOKEN

    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_manual_retry_reruns_the_download_and_resolves(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
    game = (await service.import_game(28720)).json()
    await service.services.settle()
    listing = await service.admin_get("/api/admin/monitoring/background-failures")
    (failure,) = listing.json()["failures"]
    assert (failure["game_id"], failure["failure_class"]) == (game["id"], "transient")
    url = f"/api/admin/monitoring/background-failures/{failure['id']}/retry"

    still_down = (await service.client.post(url, headers=_auth())).json()
    assert still_down["success"] is False
    assert still_down["failure"]["retry_count"] == 2

    upstreams.cdn_app.engine.clear()
    retried = (await service.client.post(url, headers=_auth())).json()
    assert retried["success"] is True
    assert retried["failure"]["resolved"] is True
    again = await service.client.post(url, headers=_auth())
    assert again.status_code == 409  # already resolved
    missing = await service.client.post(
        "/api/admin/monitoring/background-failures/424242/retry", headers=_auth()
    )
    assert missing.status_code == 404
    async with service.services.database.session() as session:
        from sqlalchemy import select

        triggers = list(await session.scalars(select(BackgroundTaskRun.trigger)))
    assert sorted(triggers) == ["initial", "manual_retry", "manual_retry"]


async def test_a_cdn_outage_is_cleaned_up_by_the_automatic_retry(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """CDN down -> failures and an open CDN breaker; CDN back -> resolved, no manual call."""
    async with make_service(
        cdn_breaker_reset_timeout=0.3, recovery_check_seconds=0.05, background_concurrency=1
    ) as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
        for bgg_id in range(200, 208):
            assert (await service.import_game(bgg_id)).status_code == 201
        await service.services.settle()
        before = (await service.admin_get("/api/admin/monitoring/background-failures")).json()
        assert before["unresolved_failures"] == 8
        assert {f["failure_class"] for f in before["failures"]} == {"transient"}
        breakers = (await service.admin_get("/api/admin/monitoring/circuit-breakers")).json()
        assert {b["circuit_breaker"]: b["state"] for b in breakers["circuit_breakers"]} == {
            "BGG API": "closed",
            "Image CDN": "open",
        }

        upstreams.cdn_app.engine.clear()  # the CDN is back; nobody calls the retry route

        async def failures_once_retries_ran() -> dict[str, Any]:
            await service.services.settle()
            response = await service.admin_get("/api/admin/monitoring/background-failures")
            body: dict[str, Any] = response.json()
            return body

        after: dict[str, Any] = await eventually(
            failures_once_retries_ran,
            "the automatic retry to resolve every failure",
            until=lambda body: body["unresolved_failures"] == 0,
        )
        assert all(f["resolved"] for f in after["failures"])
        async with service.services.database.session() as session:
            from sqlalchemy import func, select

            auto = await session.scalar(
                select(func.count())
                .select_from(BackgroundTaskRun)
                .where(BackgroundTaskRun.trigger == "auto_retry")
                .where(BackgroundTaskRun.outcome == "success")
            )
        assert auto == 8


async def test_automatic_retries_stop_at_auto_retry_max(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(auto_retry_max=2) as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(status=503)])
        await service.import_game(300)
        await service.services.settle()
        recovery = service.services.recovery
        assert len(await recovery.candidates()) == 1
        await recovery.sweep()
        await recovery.sweep()
        assert await recovery.candidates() == []
        assert (await recovery.sweep()).tried == 0
