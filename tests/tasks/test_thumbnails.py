"""Thumbnail downloads over real HTTP to the fake CDN: files, refusals, failure rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from chaos.fakes import FaultRule
from system.bgg.client import build_http_client
from system.container import Overrides, build_services
from system.db.models import BackgroundTaskFailure, BackgroundTaskRun, BoardGame
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.retry import RetryPolicy
from system.tasks.thumbnails import (
    Resolver,
    ThumbnailDownloader,
    ThumbnailNetworkError,
    run_thumbnail_task,
    thumbnail_name,
)
from tests.conftest import NoSleep, ServiceFactory, ServiceUnderTest
from tests.fakes import Upstreams
from tests.observability.test_metrics import sample


async def rows(
    service: ServiceUnderTest,
) -> tuple[list[BackgroundTaskFailure], list[BackgroundTaskRun]]:
    await service.services.settle()
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
    exposition = service.services.metrics.render()[0].decode()
    assert sample(exposition, "thumbnail_download_retries_total") == 2
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
    upstreams.cdn_app.engine.set_rules([FaultRule(**fault)])
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
        run = await run_thumbnail_task(
            services.downloader, services.recorder, game_id=game.id, url=url
        )
        assert (run.succeeded, run.recorded) == (False, "stored")
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


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PUBLIC = "93.184.216.34"
IMAGE_URL = "https://cf.geekdo-images.com/pic/x.png"


def downloader_with(
    handler: Callable[[httpx.Request], httpx.Response],
    resolver: FakeDns | Resolver,
    tmp: Path,
    allowed: Sequence[str] = ("cf.geekdo-images.com",),
) -> tuple[ThumbnailDownloader, NoSleep]:
    """A downloader whose CDN is `handler`: no socket, so the request itself can be read."""
    sleeps = NoSleep()
    downloader = ThumbnailDownloader(
        http=build_http_client(
            connect_timeout=1, read_timeout=5, transport=httpx.MockTransport(handler)
        ),
        breaker=AsyncCircuitBreaker("Image CDN", fail_max=5, reset_timeout=60),
        directory=tmp,
        max_bytes=1_000_000,
        allowed_hosts=allowed,
        policy=RetryPolicy(attempts=3, initial_wait=1.0, min_wait=2, max_wait=10, jitter=False),
        attempt_timeout=5.0,
        sleep=sleeps,
        resolver=resolver,
    )
    return downloader, sleeps


async def test_the_connection_goes_to_the_address_that_was_checked(tmp_path: Path) -> None:
    """DNS rebinding: a second lookup at connect time could answer 127.0.0.1. There is none."""
    seen: list[httpx.Request] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})

    answers = iter([[PUBLIC], ["127.0.0.1"]])

    async def rebinding(_host: str, _port: int) -> Sequence[str]:
        return next(answers)

    downloader, _ = downloader_with(cdn, rebinding, tmp_path)
    stored = await downloader.download(7, IMAGE_URL)
    (request,) = seen
    assert request.url.host == PUBLIC
    assert request.headers["Host"] == "cf.geekdo-images.com"
    assert request.extensions["sni_hostname"] == "cf.geekdo-images.com"
    # Named after the URL asked for, not the address it was fetched from.
    assert stored.path.name == thumbnail_name(7, IMAGE_URL, "image/png")


async def test_a_failed_lookup_is_a_network_error_and_retried(tmp_path: Path) -> None:
    calls = 0

    async def flaky_dns(_host: str, _port: int) -> Sequence[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("Temporary failure in name resolution")
        return [PUBLIC]

    def cdn(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})

    downloader, sleeps = downloader_with(cdn, flaky_dns, tmp_path)
    stored = await downloader.download(7, IMAGE_URL)
    assert (stored.attempts, calls, sleeps.waits) == (2, 2, [2])


async def test_a_lookup_that_keeps_failing_is_recorded_as_dns_error(tmp_path: Path) -> None:
    async def no_dns(_host: str, _port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    def cdn(_request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request without an address")

    downloader, _ = downloader_with(cdn, no_dns, tmp_path)
    with pytest.raises(ThumbnailNetworkError) as failed:
        await downloader.download(7, IMAGE_URL)
    assert (failed.value.error_type, failed.value.attempts) == ("DNSError", 3)
    assert failed.value.transient
    # A lookup failure is not the CDN answering: its breaker saw nothing.
    assert (await downloader.breaker.snapshot()).failures == 0


async def test_a_connection_layer_crash_is_a_retried_network_error(tmp_path: Path) -> None:
    def crash(_request: httpx.Request) -> httpx.Response:
        raise AttributeError("'NoneType' object has no attribute 'getpeername'")

    downloader, sleeps = downloader_with(
        crash, FakeDns({"cf.geekdo-images.com": [PUBLIC]}), tmp_path
    )
    with pytest.raises(ThumbnailNetworkError) as failed:
        await downloader.download(7, IMAGE_URL)
    assert (failed.value.error_type, failed.value.attempts, sleeps.waits) == (
        "ReadError",
        3,
        [2, 2],
    )
