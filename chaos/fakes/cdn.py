"""A fake image CDN: `GET /images/<name>` answers a small, valid image.

- `<name>.png` -> a 16x16 RGB PNG (`image/png`), its colour derived from the name;
- `<name>.jpg` / `.jpeg` -> a minimal 8x8 greyscale baseline JPEG (`image/jpeg`);
- any other extension, a name with odd characters, a name in `missing`, or another path ->
  404 (HTML page). Other methods than GET/HEAD -> 405.

The shared fault rules do the rest; the ones most useful for thumbnails are
`{"content_type": "text/html"}` (the image with a wrong type), `{"oversize": N}` (stream N
bytes starting with the image's first bytes, never held in memory; add `"chunked": true` to
send no `Content-Length`), `{"body": "truncated"}` (half an image) and `{"status": 404}`.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from chaos.fakes.app import Answer, FakeApp, html_answer
from chaos.fakes.bodies import Fixtures
from chaos.fakes.faults import FaultEngine, RequestInfo
from chaos.fakes.log import RequestLog

IMAGES_PREFIX = "/images/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_image(
    width: int = 16, height: int = 16, rgb: tuple[int, int, int] = (200, 80, 40)
) -> bytes:
    """A valid, solid-colour 8-bit RGB PNG."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * height, 9))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_image() -> bytes:
    """A valid 8x8 mid-grey baseline JPEG (one block, DC 0, end of block)."""

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    one_code = bytes([1] + [0] * 15)  # a Huffman table with one 1-bit code ...
    return b"".join(
        [
            b"\xff\xd8",  # SOI
            segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            segment(0xDB, b"\x00" + b"\x01" * 64),  # quantisation table 0, all ones
            segment(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00"),  # 8x8, 1 component
            segment(0xC4, b"\x00" + one_code + b"\x00"),  # DC table 0: ... for category 0
            segment(0xC4, b"\x10" + one_code + b"\x00"),  # AC table 0: ... for end of block
            segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),  # start of scan
            b"\x3f",  # bits 0 (DC diff 0), 0 (EOB), padded with ones
            b"\xff\xd9",  # EOI
        ]
    )


JPEG_IMAGE = jpeg_image()


def _colour(name: str) -> tuple[int, int, int]:
    value = zlib.crc32(name.encode())
    return (value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF)


class CdnApp(FakeApp):
    """The fake image CDN as an ASGI app."""

    def __init__(
        self,
        *,
        seed: int = 0,
        missing: Iterable[str] = (),
        fixtures_dir: Path | str | None = None,
        engine: FaultEngine | None = None,
        log: RequestLog | None = None,
    ) -> None:
        self.missing = set(missing)
        super().__init__(
            "cdn", self.handle, engine=engine, log=log, seed=seed, fixtures=Fixtures(fixtures_dir)
        )

    def handle(self, request: RequestInfo) -> Answer:
        """The normal (fault-free) answer."""
        if not request.path.startswith(IMAGES_PREFIX):
            return html_answer(404)
        if request.method not in ("GET", "HEAD"):
            return html_answer(405)
        name = request.path[len(IMAGES_PREFIX) :]
        if not _NAME.match(name) or name in self.missing:
            return html_answer(404)
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        headers = (("Cache-Control", "public, max-age=31536000"),)
        if extension == "png":
            return Answer(200, png_image(rgb=_colour(name)), "image/png", headers)
        if extension in ("jpg", "jpeg"):
            return Answer(200, JPEG_IMAGE, "image/jpeg", headers)
        return html_answer(404)


#: The constructor under the name the fakes' users know (keyword arguments only, as for
#: `CdnApp`).
create_cdn_app = CdnApp
