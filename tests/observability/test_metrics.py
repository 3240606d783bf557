"""`/metrics`: the series an operator needs, by route template, with nothing secret in them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from chaos.fakes import FaultRule
from tests.conftest import ADMIN_TOKEN, ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams
from tests.services import serve


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        if series != name and not series.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


async def test_requests_latency_breakers_and_tasks(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    for _ in range(3):
        await service.client.get("/api/public/games/12345")
    await service.import_game(28720)
    await service.services.runner.join()
    upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
    await service.import_game(13)
    await service.import_game(13)
    await service.import_game(13)  # rejected by the open breaker
    text = (await service.client.get("/metrics")).text

    route = "/api/public/games/{game_id}"
    assert sample(text, "http_requests_total", route=route, status="404") == 3
    assert sample(text, "http_request_duration_seconds_count", route=route) == 3
    assert sample(text, "circuit_breaker_state", breaker="BGG API") == 2
    assert sample(text, "circuit_breaker_state", breaker="Image CDN") == 0
    assert (
        sample(
            text, "circuit_breaker_transitions_total",
            breaker="BGG API", from_state="closed", to_state="open",
        )
        == 1
    )  # fmt: skip
    assert sample(text, "circuit_breaker_rejections_total", breaker="BGG API") == 1
    assert sample(text, "bgg_fetch_attempts_total", kind="first") == 3
    assert sample(text, "bgg_fetch_attempts_total", kind="retry") == 3  # 2 + 1
    assert (
        sample(
            text, "background_task_runs_total",
            task_type="thumbnail_download", outcome="success", trigger="initial",
        )
        == 1
    )  # fmt: skip
    assert sample(text, "failure_spool_pending") == 0
    assert "unmatched" not in text or sample(text, "http_requests_total", route="unmatched") >= 0


async def test_no_secrets_or_ids_in_the_labels(service: ServiceUnderTest) -> None:
    await service.client.get("/api/public/games/987654", headers={"Authorization": "Bearer x"})
    await service.admin_get("/api/admin/monitoring/circuit-breakers")
    text = (await service.client.get("/metrics")).text
    assert ADMIN_TOKEN not in text
    assert "987654" not in text  # route templates, never raw paths
    assert "Traceback" not in text


async def test_failures_recorded_and_spool_are_counted(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service() as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(status=404)])
        await service.import_game(28720)
        await service.services.runner.join()
        text = (await service.client.get("/metrics")).text
    assert (
        sample(
            text, "background_task_failures_recorded_total",
            task_type="thumbnail_download", error_type="ImageNotFound",
        )
        == 1
    )  # fmt: skip


@pytest.mark.slow
def test_two_workers_report_one_aggregate(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
    }
    with serve(env, tmp_path, workers=2) as process:
        for _ in range(40):  # new connections, so both workers get some
            httpx.get(f"{process.url}/api/public/games")
        totals = {
            sample(
                httpx.get(f"{process.url}/metrics").text,
                "http_requests_total",
                route="/api/public/games",
                status="200",
            )
            for _ in range(6)
        }
    assert totals == {40.0}, "every worker's /metrics must report the sum of both"
