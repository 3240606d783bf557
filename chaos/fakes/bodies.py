"""Response bodies: the real BGG fixture files and the bodies of HTTP faults.

Fault body kinds (`FaultRule.body`):

| kind | body | content type |
|---|---|---|
| `html` | an nginx-style HTML error page for the status | `text/html` |
| `truncated` | the first half of the normal body (XML cut mid-way; half an image) | normal |
| `broken` | malformed XML (unescaped `&`, a `<` in an attribute, mismatched tags) | `text/xml` |
| `empty` | the real empty `<items>` answer (`thing_10000000_nonexistent_empty.xml`) | `text/xml` |
| `bomb` | a billion-laughs XML document (entity expansion) | `text/xml` |
| `error` | the real `<error message='Invalid Item'/>` answer | `text/xml` |
| `queued` | the real HTTP 202 `<message>` ("Your request ... has been accepted") | `text/xml` |
| `ratelimit` | the real HTTP 429 `<error><message>Rate limit exceeded.</message>...` | `text/xml` |
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "bgg"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"

EMPTY_FILE = "thing_10000000_nonexistent_empty.xml"
INVALID_ITEM_FILE = "thing_without_id_invalid_item_error.xml"
QUEUED_FILE = "collection_202_accepted_message.xml"
RATE_LIMIT_FILE = "error_429_rate_limit_exceeded.xml"

BROKEN_XML = (
    b'<?xml version="1.0" encoding="utf-8"?><items termsofuse="https://boardgamegeek.com/'
    b'xmlapi/termsofuse"><item type="boardgame" id="1"><name type="primary" value="Fish & '
    b'Chips <Deluxe>" /><description>Unclosed &amp;#10; <b>bold</description>'
    b"<yearpublished value=2001 /></item></itemz>"
)


def _billion_laughs() -> bytes:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE items [", ' <!ENTITY lol "lol">']
    previous = "lol"
    for level in range(1, 10):
        name = f"lol{level}"
        lines.append(f' <!ENTITY {name} "{f"&{previous};" * 10}">')
        previous = name
    lines.append("]>")
    lines.append(
        '<items termsofuse="https://boardgamegeek.com/xmlapi/termsofuse">'
        f'<item type="boardgame" id="1"><name type="primary" sortindex="1" value="&{previous};" />'
        f"<description>&{previous};</description></item></items>"
    )
    return "\n".join(lines).encode()


BOMB_XML = _billion_laughs()


def html_error_page(status: int) -> bytes:
    """What nginx (or a CDN) in front of an API sends for an error status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


class Fixtures:
    """Read-only access to the real BGG response files (cached)."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else FIXTURES_DIR
        if not self.directory.is_dir():
            raise FileNotFoundError(f"BGG fixtures directory not found: {self.directory}")
        self._cache: dict[str, bytes] = {}

    def read(self, name: str) -> bytes:
        data = self._cache.get(name)
        if data is None:
            data = self._cache[name] = (self.directory / name).read_bytes()
        return data

    @property
    def empty(self) -> bytes:
        return self.read(EMPTY_FILE)

    @property
    def invalid_item(self) -> bytes:
        return self.read(INVALID_ITEM_FILE)

    @property
    def queued(self) -> bytes:
        return self.read(QUEUED_FILE)

    @property
    def rate_limit(self) -> bytes:
        return self.read(RATE_LIMIT_FILE)


def fault_body(
    kind: str, *, status: int, normal: bytes, fixtures: Fixtures
) -> tuple[bytes, str | None]:
    """The body of a fault kind and its content type (`None`: keep the normal one)."""
    if kind == "html":
        return html_error_page(status), HTML_CONTENT_TYPE
    if kind == "truncated":
        return normal[: max(1, len(normal) // 2)], None
    if kind == "broken":
        return BROKEN_XML, XML_CONTENT_TYPE
    if kind == "empty":
        return fixtures.empty, XML_CONTENT_TYPE
    if kind == "bomb":
        return BOMB_XML, XML_CONTENT_TYPE
    if kind == "error":
        return fixtures.invalid_item, XML_CONTENT_TYPE
    if kind == "queued":
        return fixtures.queued, XML_CONTENT_TYPE
    if kind == "ratelimit":
        return fixtures.rate_limit, XML_CONTENT_TYPE
    raise ValueError(f"unknown body kind {kind!r}")


def status_body(status: int, *, normal: bytes, fixtures: Fixtures) -> tuple[bytes, str | None]:
    """The body that goes with a bare status override (see `chaos.fakes.faults`)."""
    if status == 202:
        return fixtures.queued, XML_CONTENT_TYPE
    if status == 429:
        return fixtures.rate_limit, XML_CONTENT_TYPE
    if 200 <= status < 300:
        return normal, None
    return html_error_page(status), HTML_CONTENT_TYPE
