"""The service's own alerts, delivered to a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chaos.fakes import FaultRule, RunningServer, run_in_thread
from system.observability.alerts import RequestWindow
from tests.conftest import ServiceFactory
from tests.fakes import Upstreams


class Receiver:
    """A Slack-style incoming webhook that keeps what it is sent (and can refuse it)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refuse = False

        async def hook(request: Request) -> JSONResponse:
            if self.refuse:
                return JSONResponse({"ok": False}, status_code=500)
            self.messages.append(await request.json())
            return JSONResponse({"ok": True})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def statuses(self) -> list[tuple[str, str]]:
        return [(m["alert"]["rule"], m["alert"]["status"]) for m in self.messages]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, RunningServer]]:
    hook = Receiver()
    with run_in_thread(hook.app) as server:
        yield hook, server


def test_request_window_counts_only_its_window() -> None:
    now = [1000.0]
    window = RequestWindow(60, clock=lambda: now[0])
    for _ in range(98):
        window.observe(200)
    window.observe(500)
    window.observe(503)
    assert window.totals() == (100, 2)
    now[0] += 61
    window.observe(200)
    assert window.totals() == (1, 0)


async def test_breaker_open_fires_once_and_resolves_once(
    make_service: ServiceFactory, upstreams: Upstreams, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    async with make_service(
        alert_webhook_url=f"{server.url}/hook",
        alert_breaker_open_seconds=0,
        bgg_breaker_reset_timeout=0.2,
        alert_check_interval_seconds=3600,  # the test drives the checks itself
    ) as service:
        alerter = service.services.alerter
        assert await alerter.check_once() == []
        upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
        await service.import_game(13)
        await service.import_game(13)
        assert await alerter.check_once() == ["breaker_open:firing"]
        assert await alerter.check_once() == []  # still open: no second message
        (message,) = hook.messages
        assert message["text"].startswith(":rotating_light:")
        assert "BGG API" in message["alert"]["summary"]
        assert message["attachments"][0]["color"] == "#d00000"
        listed = (await service.admin_get("/api/admin/monitoring/alerts")).json()
        assert {a["rule"]: a["firing"] for a in listed}["breaker_open"] is True

        upstreams.bgg_app.engine.clear()
        await asyncio.sleep(0.25)  # the configured 0.2 s reset timeout, in real time
        assert (await service.import_game(28720)).status_code == 201  # trial closes it
        assert await alerter.check_once() == ["breaker_open:resolved"]
        assert await alerter.check_once() == []
    assert hook.statuses() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


async def test_unresolved_failures_and_error_rate(
    make_service: ServiceFactory, upstreams: Upstreams, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    async with make_service(
        alert_webhook_url=f"{server.url}/hook",
        alert_unresolved_threshold=2,
        alert_error_rate_min_requests=10,
        alert_check_interval_seconds=3600,
    ) as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(status=404)])
        for bgg_id in (1, 2, 3):
            await service.import_game(bgg_id)
        await service.services.runner.join()
        window = service.services.alerter.window
        for _ in range(20):
            window.observe(200)
        window.observe(500)
        sent = await service.services.alerter.check_once()
        assert sent == ["error_rate:firing", "unresolved_failures:firing"]
    error_rate = next(m["alert"] for m in hook.messages if m["alert"]["rule"] == "error_rate")
    assert error_rate["value"] == pytest.approx(1 / 24)  # 3 imports + 21 requests, 1 failed
    assert error_rate["threshold"] == 0.01


async def test_an_undelivered_alert_is_sent_at_the_next_check(
    make_service: ServiceFactory, receiver: tuple[Receiver, RunningServer]
) -> None:
    hook, server = receiver
    async with make_service(
        alert_webhook_url=f"{server.url}/hook",
        alert_unresolved_threshold=0,
        alert_check_interval_seconds=3600,
    ) as service:
        from system.db.models import BackgroundTaskFailure

        async with service.services.database.session() as session:
            session.add(BackgroundTaskFailure(task_type="thumbnail_download", error_message="x"))
        hook.refuse = True
        assert await service.services.alerter.check_once() == []
        hook.refuse = False
        assert await service.services.alerter.check_once() == ["unresolved_failures:firing"]
    assert hook.statuses() == [("unresolved_failures", "firing")]


async def test_the_open_breakers_503s_do_not_count_as_errors(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(bgg_retry_attempts=1) as service:
        upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
        for _ in range(20):
            await service.import_game(13)
        requests, errors = service.services.alerter.window.totals()
    assert requests == 20
    assert errors == 5  # the five 502s that opened the breaker; the fifteen 503s are designed
