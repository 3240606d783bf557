"""`/metrics`: the series an operator needs, by route template, with nothing secret in them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from chaos.fakes import FaultRule
from system.db.database import Database
from system.db.tasks import TaskRecord
from system.observability.metrics import Metrics
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.retry import RetryPolicy
from system.tasks.recording import TaskRecorder
from system.tasks.spool import Spool
from system.tasks.thumbnails import ThumbnailDownloader, run_thumbnail_task
from tests.conftest import ADMIN_TOKEN, NoSleep, ServiceFactory, ServiceUnderTest
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
    await service.services.settle()
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
        await service.services.settle()
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


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
IMAGE_URL = "https://cf.geekdo-images.com/pic/x.png"


async def _public_dns(_host: str, _port: int) -> Sequence[str]:
    return ["93.184.216.34"]


@pytest.mark.parametrize(
    ("answers", "fail_max", "retries", "outcome"),
    [
        (["connect", "connect", 200], 5, 2, "success"),
        (["connect", "connect", "connect"], 5, 2, "three network errors"),
        ([404], 5, 0, "a refusal is not retried"),
        (["connect", "connect"], 2, 1, "the third attempt is rejected by the open breaker"),
        (["connect"], 1, 0, "the second attempt is rejected by the open breaker"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_thumbnail_retries_are_counted_from_real_downloads(
    database_url: str,
    tmp_path: Path,
    answers: list[str | int],
    fail_max: int,
    retries: int,
    outcome: str,
) -> None:
    """The spec's thumbnail policy against a CDN that fails as told, recorded by a real
    recorder whose `on_record` is the metrics hook (as `build_services` wires it)."""
    pending = list(answers)

    def cdn(request: httpx.Request) -> httpx.Response:
        answer = pending.pop(0)
        if answer == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        assert isinstance(answer, int)
        return httpx.Response(answer, content=PNG, headers={"content-type": "image/png"})

    metrics = Metrics()
    database = Database(database_url)
    recorder = TaskRecorder(
        database, Spool(tmp_path / "spool.jsonl"), on_record=metrics.count_thumbnail_retries
    )
    downloader = ThumbnailDownloader(
        http=httpx.AsyncClient(transport=httpx.MockTransport(cdn)),
        breaker=AsyncCircuitBreaker("Image CDN", fail_max=fail_max, reset_timeout=60),
        directory=tmp_path / "thumbnails",
        max_bytes=1_000_000,
        allowed_hosts=["cf.geekdo-images.com"],
        policy=RetryPolicy(attempts=3, initial_wait=1.0, min_wait=2, max_wait=10, jitter=False),
        attempt_timeout=5.0,
        sleep=NoSleep(),
        resolver=_public_dns,
    )
    try:
        await run_thumbnail_task(downloader, recorder, game_id=7, url=IMAGE_URL)
    finally:
        await downloader.http.aclose()
        await database.close()
    assert pending == []  # every answer was asked for: the attempts happened
    text = metrics.render()[0].decode()
    assert sample(text, "thumbnail_download_retries_total") == retries, outcome


def test_only_thumbnail_runs_count_as_thumbnail_retries() -> None:
    metrics = Metrics()
    now = datetime.now(UTC)
    for task_type in ("bgg_import", "thumbnail_download"):
        metrics.count_thumbnail_retries(
            TaskRecord(
                task_type=task_type,
                game_id=None,
                outcome="success",
                attempts=3,
                started_at=now,
                finished_at=now,
            )
        )
    assert sample(metrics.render()[0].decode(), "thumbnail_download_retries_total") == 2
