"""The fake image CDN: valid images, 404s, wrong types, oversize bodies streamed lazily."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import httpx
import pytest

from chaos.fakes import FakeControl, RunningServer
from chaos.fakes.cdn import PNG_SIGNATURE
from tests.support.waiting import eventually_sync


def parse_png(data: bytes) -> tuple[int, int, bytes]:
    """Check a PNG's structure and CRCs; return width, height and the raw pixel rows."""
    assert data.startswith(PNG_SIGNATURE)
    pos = len(PNG_SIGNATURE)
    chunks: list[tuple[bytes, bytes]] = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    return width, height, zlib.decompress(chunks[1][1])


def jpeg_markers(data: bytes) -> list[int]:
    assert data[:2] == b"\xff\xd8"
    assert data[-2:] == b"\xff\xd9"
    markers, pos = [], 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        markers.append(data[pos + 1])
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    markers.append(data[pos + 1])
    return markers


def test_png_is_valid_with_the_right_type(http: httpx.Client, cdn: RunningServer) -> None:
    response = http.get(f"{cdn.url}/images/pic3469216.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    width, height, pixels = parse_png(response.content)
    assert len(pixels) == height * (1 + 3 * width)
    other = http.get(f"{cdn.url}/images/other.png").content
    assert parse_png(other)[2] != pixels  # colour follows the name


def test_jpeg_is_well_formed(http: httpx.Client, cdn: RunningServer) -> None:
    response = http.get(f"{cdn.url}/images/pic3469216.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert jpeg_markers(response.content) == [0xE0, 0xDB, 0xC0, 0xC4, 0xC4, 0xDA]


@pytest.mark.parametrize("path", ["/images/x.gif", "/images/../etc", "/other/x.png", "/images/"])
def test_unknown_images_are_404(http: httpx.Client, cdn: RunningServer, path: str) -> None:
    assert http.get(f"{cdn.url}{path}").status_code == 404


def test_missing_set_and_404_fault(http: httpx.Client, cdn: RunningServer) -> None:
    cdn.app.missing.add("gone.jpg")
    try:
        assert http.get(f"{cdn.url}/images/gone.jpg").status_code == 404
    finally:
        cdn.app.missing.discard("gone.jpg")
    with FakeControl(cdn.url) as ctl:
        ctl.add_fault(path="/images/pic1.jpg", status=404)
        assert http.get(f"{cdn.url}/images/pic1.jpg").status_code == 404
        assert http.get(f"{cdn.url}/images/pic2.jpg").status_code == 200
        assert ctl.count(path="/images/pic1.jpg", status=404) == 1


def test_wrong_content_type(http: httpx.Client, cdn: RunningServer) -> None:
    with FakeControl(cdn.url) as ctl:
        ctl.add_fault(content_type="text/html; charset=utf-8")
    response = http.get(f"{cdn.url}/images/a.png")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    parse_png(response.content)  # the bytes are still the image


def test_truncated_image(http: httpx.Client, cdn: RunningServer) -> None:
    whole = http.get(f"{cdn.url}/images/a.png").content
    with FakeControl(cdn.url) as ctl:
        ctl.add_fault(body="truncated")
    assert http.get(f"{cdn.url}/images/a.png").content == whole[: len(whole) // 2]


@pytest.mark.parametrize("chunked", [False, True])
def test_oversize_streams_without_building_the_body(
    http: httpx.Client, cdn: RunningServer, chunked: bool
) -> None:
    size = 48 * 1024 * 1024
    with FakeControl(cdn.url) as ctl:
        ctl.add_fault(oversize=size, chunked=chunked)
    tracemalloc.start()
    try:
        received = 0
        with http.stream("GET", f"{cdn.url}/images/big.png") as response:
            assert response.headers["content-type"] == "image/png"
            if chunked:
                assert "content-length" not in response.headers
            else:
                assert response.headers["content-length"] == str(size)
            first = b""
            for piece in response.iter_raw():
                if not first:
                    first = piece
                received += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert first.startswith(PNG_SIGNATURE)
    assert peak < 8 * 1024 * 1024  # the fake and the client held a few chunks at a time


def test_oversize_stops_when_the_client_gives_up(http: httpx.Client, cdn: RunningServer) -> None:
    size = 1024**4  # 1 TiB: only a lazy stream can even start
    with FakeControl(cdn.url) as ctl:
        ctl.add_fault(oversize=size)
        with http.stream("GET", f"{cdn.url}/images/big.jpg") as response:
            received = 0
            for piece in response.iter_raw():
                received += len(piece)
                if received > 2 * 1024 * 1024:
                    break
        record = eventually_sync(
            lambda: ctl.requests()[-1],
            "the fake to see the client go",
            until=lambda r: r.outcome != "pending",
        )
    assert record.outcome == "disconnected"
    assert 2 * 1024 * 1024 < record.bytes_sent < size
