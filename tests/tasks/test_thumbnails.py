"""Thumbnail downloads over real HTTP to the fake CDN: files, refusals, failure rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from chaos.fakes import FaultRule
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.services import Overrides, build_services
from system.tasks.thumbnails import run_thumbnail_task
from tests.conftest import NoSleep, ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams


async def rows(
    service: ServiceUnderTest,
) -> tuple[list[BackgroundTaskFailure], list[BackgroundTaskRun]]:
    await service.services.runner.join()
    async with service.services.database.session() as session:
        failures = list(await session.scalars(select(BackgroundTaskFailure)))
        runs = list(await session.scalars(select(BackgroundTaskRun)))
    return failures, runs


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(".part-*")) if directory.exists() else []


async def test_a_good_download_leaves_the_file_and_a_success_row(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    game = (await service.import_game(28720)).json()
    failures, runs = await rows(service)
    assert failures == []
    (run,) = runs
    assert (run.task_type, run.outcome, run.attempts, run.game_id) == (
        "thumbnail_download", "success", 1, game["id"],
    )  # fmt: skip
    async with service.services.database.session() as session:
        stored = await session.get(BoardGame, game["id"])
    assert stored is not None and stored.thumbnail_path is not None
    path = Path(stored.thumbnail_path)
    assert path.parent == service.settings.thumbnail_dir
    assert path.name.startswith(f"{game['id']}-") and path.suffix in {".jpg", ".png"}
    assert path.read_bytes()[:3] in {b"\xff\xd8\xff", b"\x89PN"}
    assert leftovers(service.settings.thumbnail_dir) == []
    assert upstreams.image_requests() == 1


async def test_three_timeouts_leave_one_failure_row_and_one_failed_run(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(thumbnail_timeout=0.2) as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(delay=5)])
        game = (await service.import_game(28720)).json()
        failures, runs = await rows(service)
    (failure,) = failures
    assert failure.task_type == "thumbnail_download"
    assert failure.game_id == game["id"]
    assert failure.retry_count == 3
    assert failure.error_type == "ReadTimeout"
    assert failure.error_message.startswith("Network error:")
    assert failure.url == game["thumbnail_url"]
    assert failure.stack_trace and "ReadTimeout" in failure.stack_trace
    assert failure.resolved is False and failure.created_at is not None
    (run,) = runs
    assert (run.outcome, run.attempts, run.failure_id) == ("failure", 3, failure.id)
    assert upstreams.image_requests() == 3
    assert service.sleeps.waits == [2, 2]  # the spec's policy: exponential, 2-10 s
    assert leftovers(service.settings.thumbnail_dir) == []


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ({"content_type": "text/html"}, "UnsupportedContentType"),
        ({"oversize": 6_000_000}, "ThumbnailTooLarge"),
        ({"oversize": 6_000_000, "chunked": True}, "ThumbnailTooLarge"),
        ({"status": 404}, "ImageNotFound"),
        ({"status": 503}, "CdnServerError"),
        ({"status": 400}, "CdnHttpError"),
    ],
)
async def test_refused_answers_are_recorded_and_leave_no_file(
    service: ServiceUnderTest, upstreams: Upstreams, fault: dict[str, object], error_type: str
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(**fault)])  # type: ignore[arg-type]
    await service.import_game(28720)
    failures, runs = await rows(service)
    (failure,) = failures
    assert failure.error_type == error_type
    assert failure.retry_count == 1  # only timeouts and network errors are retried
    assert [r.outcome for r in runs] == ["failure"]
    thumbs = service.settings.thumbnail_dir
    assert leftovers(thumbs) == [] and not list(thumbs.glob("*.*") if thumbs.exists() else [])


class FakeDns:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def __call__(self, host: str, _port: int) -> Sequence[str]:
        return self.answers[host]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme"),
        ("ftp://cf.geekdo-images.com/x.jpg", "scheme"),
        ("https://evil.example/x.jpg", "not in IMAGE_ALLOWED_HOSTS"),
        ("https://cf.geekdo-images.com/x.jpg", "non-public 10.0.0.7"),
        ("https://cf.geekdo-static.com/x.jpg", "non-public 127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data", "not in IMAGE_ALLOWED_HOSTS"),
    ],
)
async def test_unsafe_urls_are_refused_before_any_request(
    settings: object, upstreams: Upstreams, url: str, message: str, tmp_path: Path
) -> None:
    from tests.conftest import make_settings

    local = make_settings(
        database_url=settings.database_url,  # type: ignore[attr-defined]
        thumbnail_dir=tmp_path / "t",
        spool_path=tmp_path / "spool",
    )
    dns = FakeDns({"cf.geekdo-images.com": ["10.0.0.7"], "cf.geekdo-static.com": ["127.0.0.1"]})
    services = build_services(local, Overrides(sleep=NoSleep(), resolver=dns))
    try:
        async with services.database.session() as session:
            game = BoardGame(bgg_id=1, title="x")
            session.add(game)
        ok = await run_thumbnail_task(
            services.downloader, services.recorder, game_id=game.id, url=url
        )
        assert ok is False
        async with services.database.session() as session:
            (failure,) = await session.scalars(select(BackgroundTaskFailure))
        assert failure.error_type == "RefusedUrl"
        assert message in failure.error_message
        assert upstreams.image_requests() == 0
    finally:
        await services.aclose()


async def test_cdn_outage_opens_the_cdn_breaker_not_the_bgg_one(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(background_concurrency=1) as service:
        upstreams.cdn_app.engine.set_rules([FaultRule(status=502)])
        for bgg_id in range(100, 107):
            assert (await service.import_game(bgg_id)).status_code == 201
        failures, _ = await rows(service)
        breakers = (await service.admin_get("/api/admin/monitoring/circuit-breakers")).json()
    states = {b["circuit_breaker"]: b["state"] for b in breakers["circuit_breakers"]}
    assert states == {"BGG API": "closed", "Image CDN": "open"}
    assert [f.error_type for f in failures] == ["CdnServerError"] * 5 + ["CircuitBreakerOpen"] * 2
    assert upstreams.image_requests() == 5
