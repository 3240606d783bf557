"""What a thumbnail must be to be stored: the bytes it declares, from an allowed host *and
port*, with no credentials in its URL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from chaos.fakes import FaultRule
from chaos.fakes.cdn import jpeg_image, png_image
from system.db.models import BackgroundTaskFailure
from system.tasks.thumbnails import RefusedUrl, sniff_image
from tests.conftest import ServiceFactory, ServiceUnderTest, make_settings
from tests.fakes import Upstreams
from tests.tasks.test_thumbnails import PUBLIC, FakeDns, downloader_with, leftovers, rows

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88"
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (png_image(), "png"),
        (jpeg_image(), "jpg"),
        (GIF, "gif"),
        (b"GIF87a" + GIF[6:], "gif"),
        (WEBP, "webp"),
        (AVIF, "avif"),
        (b"<!doctype html><html><body>not an image</body></html>", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"RIFF\x1a\x00\x00\x00WAVEfmt ", None),
        (b"\x89PN", None),
        (b"", None),
    ],
)
def test_magic_bytes(body: bytes, kind: str | None) -> None:
    assert sniff_image(body[:12]) == kind


@pytest.mark.parametrize(
    ("content_type", "body", "found"),
    [
        ("image/png", "<html><body>Login required</body></html>", "not an image"),
        ("image/jpeg", "GIF89a" + "x" * 40, "a GIF image"),
        ("image/gif", "", "not an image"),
    ],
)
async def test_a_body_that_is_not_the_declared_image_is_refused_and_not_retried(
    service: ServiceUnderTest,
    upstreams: Upstreams,
    content_type: str,
    body: str,
    found: str,
) -> None:
    upstreams.cdn_app.engine.set_rules([FaultRule(content_type=content_type, text=body)])
    await service.import_game(28720)
    failures, runs = await rows(service)
    (failure,) = failures
    assert failure.error_type == "ContentTypeMismatch"
    assert f"declared {content_type}, but it is {found}" in failure.error_message
    assert failure.retry_count == 1 and upstreams.image_requests() == 1
    assert [r.outcome for r in runs] == ["failure"]
    thumbs = service.settings.thumbnail_dir
    assert leftovers(thumbs) == [] and not list(thumbs.glob("*.*") if thumbs.exists() else [])
    # The CDN answered; its answer is just not an image: no failure for its breaker.
    assert (await service.services.breakers["Image CDN"].snapshot()).failures == 0


async def test_a_jpeg_declared_as_png_is_refused(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    """The fake CDN's `_t.jpg` thumbnails are JPEG; only the header is changed."""
    upstreams.cdn_app.engine.set_rules([FaultRule(content_type="image/png")])
    await service.import_game(28720)
    (failure,), _ = await rows(service)
    assert failure.error_type == "ContentTypeMismatch"
    assert "declared image/png, but it is a JPG image" in failure.error_message


async def test_a_bare_host_allows_only_the_default_port(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    """Before, `127.0.0.1` allowed the fake CDN on its random port (and every other port)."""
    async with make_service(image_allowed_hosts=["127.0.0.1"]) as service:
        await service.import_game(28720)
        failures, _ = await rows(service)
    (failure,) = failures
    assert failure.error_type == "RefusedUrl"
    assert f"port {upstreams.cdn.port}: not in IMAGE_ALLOWED_HOSTS" in failure.error_message
    assert upstreams.image_requests() == 0


async def test_host_and_port_entry_allows_that_port(
    make_service: ServiceFactory, upstreams: Upstreams
) -> None:
    async with make_service(image_allowed_hosts=[f"127.0.0.1:{upstreams.cdn.port}"]) as service:
        await service.import_game(28720)
        failures, runs = await rows(service)
    assert failures == [] and [r.outcome for r in runs] == ["success"]


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=png_image(), headers={"content-type": "image/png"})


@pytest.mark.parametrize(
    ("allowed", "url", "fetched"),
    [
        (["cf.geekdo-images.com"], "https://cf.geekdo-images.com/x.png", True),
        (["cf.geekdo-images.com"], "https://cf.geekdo-images.com:443/x.png", True),
        (["cf.geekdo-images.com"], "http://cf.geekdo-images.com/x.png", True),
        (["cf.geekdo-images.com"], "https://cf.geekdo-images.com:8443/x.png", False),
        (["cf.geekdo-images.com"], "http://cf.geekdo-images.com:443/x.png", False),
        (["cf.geekdo-images.com:8443"], "https://cf.geekdo-images.com:8443/x.png", True),
        (["cf.geekdo-images.com:8443"], "https://cf.geekdo-images.com/x.png", False),
        (["CF.geekdo-images.com:*"], "https://cf.geekdo-images.com:9999/x.png", True),
        (["cf.geekdo-images.com"], "https://cf.geekdo-images.com:99999/x.png", False),
    ],
)
async def test_port_rule(tmp_path: Path, allowed: list[str], url: str, fetched: bool) -> None:
    seen: list[httpx.Request] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok(request)

    dns = FakeDns({"cf.geekdo-images.com": [PUBLIC]})
    downloader, _ = downloader_with(cdn, dns, tmp_path, allowed)
    if fetched:
        await downloader.download(7, url)
        assert len(seen) == 1
    else:
        with pytest.raises(RefusedUrl, match=r"IMAGE_ALLOWED_HOSTS|invalid port"):
            await downloader.download(7, url)
        assert seen == []


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cret@cf.geekdo-images.com/x.png",
        "https://token@cf.geekdo-images.com/x.png",
        "https://:s3cret@cf.geekdo-images.com/x.png",
    ],
)
async def test_urls_with_credentials_are_refused_before_any_request(
    tmp_path: Path, url: str
) -> None:
    """httpx sent them to the CDN as Basic auth."""

    def cdn(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request may be made: {request.headers}")

    downloader, _ = downloader_with(cdn, FakeDns({"cf.geekdo-images.com": [PUBLIC]}), tmp_path)
    with pytest.raises(RefusedUrl, match="credentials") as refused:
        await downloader.download(7, url)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("entry", ["cdn.example:0", "cdn.example:70000", "cdn.example:x", "[::1"])
def test_malformed_entries_stop_the_start(entry: str) -> None:
    with pytest.raises(ValidationError, match="IMAGE_ALLOWED_HOSTS entry"):
        make_settings(image_allowed_hosts=f"cf.geekdo-images.com,{entry}")


def test_entries_are_normalised() -> None:
    settings = make_settings(image_allowed_hosts=" CDN.example:8443 ,127.0.0.1:*,::1,[::1]:8080")
    assert settings.image_allowed_hosts == [
        "cdn.example:8443",
        "127.0.0.1:*",
        "[::1]",
        "[::1]:8080",
    ]


async def test_failure_rows_never_hold_credentials_refused_at_import(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    """The parser drops such URLs, so no download (and no failure row) ever sees one."""
    cdn = upstreams.cdn.url.replace("http://", "http://user:s3cret@")
    body = (
        '<items><item type="boardgame" id="5"><name type="primary" value="x" />'
        f"<thumbnail>{cdn}/images/pic5_t.jpg</thumbnail></item></items>"
    )
    upstreams.bgg_app.engine.set_rules([FaultRule(path="/thing", text=body)])
    assert (await service.import_game(5)).status_code == 201
    await service.services.settle()
    async with service.services.database.session() as session:
        assert list(await session.scalars(select(BackgroundTaskFailure))) == []
