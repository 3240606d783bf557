"""The import route over real HTTP to the fake BGG: the breaker opens, rejects, recovers.

Upstream requests are counted at the fake BGG (its request log), not assumed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
import time_machine

from chaos.fakes import FaultRule
from tests.conftest import ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams
from tests.support.waiting import eventually

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_import_creates_then_updates(service: ServiceUnderTest, upstreams: Upstreams) -> None:
    created = await service.import_game(28720)
    assert created.status_code == 201, created.text
    game = created.json()
    assert game["title"] == "Brass: Lancashire" and game["bgg_id"] == 28720
    assert game["created_at"].endswith("Z")
    updated = await service.import_game(28720)
    assert updated.status_code == 200
    assert updated.json()["id"] == game["id"]
    assert upstreams.thing_requests() == 2
    listed = (await service.client.get("/api/public/games")).json()
    assert listed["total"] == 1


async def test_unknown_ids_are_404_and_leave_the_breaker_closed(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    for offset in range(10):
        response = await service.import_game(2_500_000 + offset)  # above the fake's catalogue
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "game_not_found"
    status = (await service.admin_get("/api/admin/monitoring/circuit-breaker-status")).json()
    assert (status["state"], status["failure_count"]) == ("closed", 0)
    assert upstreams.thing_requests() == 10  # one request each: not found is never retried


@pytest.mark.parametrize("bgg_id", [0, -5, 10_000_001, 99_999_999_999])
async def test_out_of_range_ids_are_422_before_any_call(
    service: ServiceUnderTest, upstreams: Upstreams, bgg_id: int
) -> None:
    response = await service.import_game(bgg_id)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "bgg_id"
    assert upstreams.thing_requests() == 0


async def test_non_integer_id_is_422(service: ServiceUnderTest) -> None:
    response = await service.import_game("abc")  # type: ignore[arg-type]
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "bgg_id"


async def _open_the_breaker(service: ServiceUnderTest, upstreams: Upstreams) -> None:
    upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
    first = await service.import_game(13)
    assert first.status_code == 502  # 3 attempts, all 503
    second = await service.import_game(13)
    # Attempts 4 and 5 failed; the 5th opened the breaker, so no wait and no 6th attempt.
    assert second.status_code == 502
    assert upstreams.thing_requests() == 5
    assert len(service.sleeps.waits) == 3


async def test_breaker_opens_after_exactly_fail_max_upstream_requests(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        await _open_the_breaker(service, upstreams)
        status = (await service.admin_get("/api/admin/monitoring/circuit-breaker-status")).json()
        assert status["circuit_breaker"] == "BGG API"
        assert (status["state"], status["is_available"]) == ("open", False)
        assert status["failure_count"] == 5
        assert status["seconds_until_half_open"] == 60
        for _ in range(20):
            rejected = await service.import_game(28720)
            assert rejected.status_code == 503
            assert rejected.headers["Retry-After"] == "60"
            error = rejected.json()["error"]
            assert (error["breaker"], error["state"]) == ("BGG API", "open")
        assert upstreams.thing_requests() == 5, "no request may reach BGG while open"
        assert len(service.sleeps.waits) == 3, "a rejected import must never wait"

        # After the reset timeout exactly one trial goes through; its failure re-opens.
        clock.shift(60)
        trial = await service.import_game(13)
        assert trial.status_code == 502  # the trial reached BGG and failed: no retry after it
        assert upstreams.thing_requests() == 6
        assert (await service.import_game(13)).status_code == 503
        status = (await service.admin_get("/api/admin/monitoring/circuit-breaker-status")).json()
        assert status["state"] == "open"

        # Next time the trial succeeds and closes the breaker.
        clock.shift(60)
        upstreams.bgg_app.engine.clear()
        assert (await service.import_game(28720)).status_code == 201
        status = (await service.admin_get("/api/admin/monitoring/circuit-breaker-status")).json()
        assert (status["state"], status["failure_count"]) == ("closed", 0)
        assert status["description"] == "Service is healthy and accepting requests"
        assert [t["to_state"] for t in status["recent_transitions"]] == [
            "open", "half_open", "open", "half_open", "closed",
        ]  # fmt: skip


async def test_fifty_concurrent_imports_while_half_open_make_one_upstream_request(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        await _open_the_breaker(service, upstreams)
        clock.shift(61)
        # The trial hangs until the fault is cleared, so all 50 arrive while it is in flight.
        upstreams.bgg_app.engine.set_rules([FaultRule(hang=True, path="/thing")])
        before = upstreams.thing_requests()
        imports = [asyncio.create_task(service.import_game(28720)) for _ in range(50)]
        await eventually(
            upstreams.thing_requests, "the trial to reach BGG", until=lambda n: n > before
        )
        # The trial is held, so every other import must be answered while it is in flight.
        await eventually(
            lambda: [t for t in imports if t.done()],
            "49 imports answered while the trial hangs",
            until=lambda done: len(done) >= 49,
        )
        rejected = [t for t in imports if t.done()]
        upstreams.bgg_app.engine.clear()  # releases the trial with the normal answer
        responses = await asyncio.gather(*imports)
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(201) == 1, statuses
        assert statuses.count(503) == 49
        assert len(rejected) == 49
        assert upstreams.thing_requests() - before == 1


async def test_open_breaker_answers_without_touching_the_database(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service() as service:
        await _open_the_breaker(service, upstreams)
        # Take the database away: a rejection must not need it.
        await service.services.database.engine.dispose()
        service.services.database.engine.pool._creator = None  # type: ignore[assignment]
        rejected = await service.import_game(28720)
        assert rejected.status_code == 503
        assert rejected.json()["error"]["code"] == "bgg_unavailable"
        # ...while anything that does touch the database now fails.
        transport = service.client._transport
        assert isinstance(transport, httpx.ASGITransport)
        transport.raise_app_exceptions = False
        assert (await service.client.get("/api/public/games")).status_code >= 500
