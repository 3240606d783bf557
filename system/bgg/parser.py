"""Turn the body of a BGG XML API2 `thing` answer into a `BggGame`, or a `BggError`.

`parse_thing` never raises anything but a subclass of `BggError`:

- `BggBadResponse`: the body is larger than `max_bytes`; it is not well-formed XML; it has a
  DTD or entity declarations (refused before anything is expanded: no billion laughs, no
  external entities); it declares an encoding we do not decode; it is an HTML page; its root
  is not one BGG uses; its top-level `<item>` elements have no `id` at all (not a `thing`
  answer, e.g. a collection); or the requested item has no primary name.
- `GameNotFound`: `<items>` with no top-level `<item>` (unknown id, or an id that does not
  match the `type` filter), or with top-level items none of which has the requested id.
- `BggRequestError`: BGG said the request was invalid: an `<error message=...>` inside a
  top-level `<item>` (e.g. "Invalid Item"), or a root `<errors>` (e.g. "Invalid username
  specified").
- `BggRateLimited`: a root `<error><message>` (the body BGG sends with a 429).
- `BggTransientError`: a root `<message>` (the 202 "accepted and will be processed" body: the
  answer is queued, so asking again later will work).

Unknown or malformed values never raise: BGG uses 0 for "not set", and a game is still
useful without its year or player count, so such fields simply become None.
"""

from __future__ import annotations

import html
import math
import re
import time
from typing import Final
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml.common import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser

from system.bgg.errors import (
    BggBadResponse,
    BggRateLimited,
    BggRequestError,
    BggTransientError,
    GameNotFound,
)
from system.bgg.models import TITLE_MAX_LENGTH, URL_MAX_LENGTH, BggGame

__all__ = ["DEFAULT_MAX_BYTES", "parse_thing"]

#: The largest real `thing` answers (many versions, videos, comments) are a few hundred KB.
DEFAULT_MAX_BYTES: Final = 5_000_000

# Database columns are 32-bit integers; a bigger number from BGG is garbage, not data.
_INT_MAX: Final = 2**31 - 1
# BGG ratings are on a 1-10 scale; anything outside it is not a rating.
_RATING_MAX: Final = 10.0
# Keeps error messages short when they quote text we did not expect.
_QUOTE_MAX: Final = 200
# Characters handed to expat at a time. Between two pieces the parse pauses for
# `_FEED_PAUSE` s without the GIL, so an event loop in another thread waits for at most one
# piece (about a millisecond), not for a whole multi-megabyte answer (`system/bgg/client.py`).
# A real pause, not sleep(0): that released the GIL but mostly took it straight back, and
# the loop still waited out the 5 ms switch interval at each hand-over.
_FEED_CHARS: Final = 16_384
_FEED_PAUSE: Final = 0.0002

_INT_RE: Final = re.compile(r"[+-]?[0-9]{1,12}")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})")
_XML_DECL_ENCODING_RE: Final = re.compile(
    rb"""\A<\?xml[^>]{0,200}?\bencoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']"""
)
_URL_RE: Final = re.compile(r"https?://[^\s/?#]+\S*", re.IGNORECASE)
_HTML_RE: Final = re.compile(r"<!doctype\s+html\b|<html[\s>]", re.IGNORECASE)

# Bytes are decoded here and expat gets a str, which makes it ignore the declared encoding:
# given bytes, pyexpat would look up whatever Python codec the declaration names
# (unicode_escape, rot13, ...) and could fail in any way. BGG sends UTF-8; a declared
# encoding outside this list is refused rather than silently mis-decoded.
_ENCODINGS: Final = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "iso-8859-1": "latin-1",
    "latin-1": "latin-1",
    "latin1": "latin-1",
}
_BOMS: Final = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)

_LINK_FIELDS: Final = {
    "boardgamecategory": "categories",
    "boardgamemechanic": "mechanics",
    "boardgamedesigner": "designers",
    "boardgamepublisher": "publishers",
}


def parse_thing(
    body: bytes | str,
    *,
    bgg_id: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    feed_pause: float = _FEED_PAUSE,
) -> BggGame:
    """Parse a `thing?id=...` answer and return the top-level item whose id is `bgg_id`.

    Nested `<item>` elements (the `boardgameversion` entries under `<versions>`) are never
    picked. Judgment calls on values:

    - `year_published`: 0 (BGG's "unknown") becomes None; negative years are kept, since BGG
      lists ancient games with BC years.
    - `min_players`, `max_players`, `playing_time`, `min_age`: 0 or less becomes None. BGG
      stores an unset minimum age as 0 exactly like the other counts, and no game is rated
      for age 0, so min_age 0 means "unknown" too.
    - `average_rating`, `bayes_average`: 0 (no ratings, or too few votes for a Bayes
      average) becomes None, as does anything outside BGG's 1-10 scale. 0.0 would read as a
      terrible rating, which it is not.
    - `bgg_rank`: the `boardgame` rank; "Not Ranked" (expansions, too few votes) is None.
    - A value that is not a plain decimal number (or exceeds a 32-bit int) becomes None.
    - `thumbnail_url`, `image_url`: protocol-relative `//host/...` becomes `https://host/...`
      (BGG's image hosts serve https); anything not http(s) becomes None, so no
      `javascript:` URL ever reaches a page.
    - `description`: BGG escapes it twice, so HTML entities left after XML parsing
      (`&#10;`, `&mdash;`) are unescaped once, then it is stripped; empty becomes None.
    - `title`: longer than `TITLE_MAX_LENGTH` (the column) is cut to it, ending in `…`: the
      game is still worth having, and BGG keeps the full name.
    - `thumbnail_url`, `image_url`: longer than `URL_MAX_LENGTH`, or carrying credentials
      (`https://user:pass@host/...`), become None: a cut URL names another resource, and
      credentials would be sent as Basic auth and shown to the public.

    `feed_pause` is the pause between pieces (see `_FEED_PAUSE`); a parse in a process of
    its own (`system/bgg/parse_process.py`) has no event loop to pause for and passes 0.

    Raises the `BggError` subclasses listed in the module docstring, and nothing else.
    """
    root = _parse_xml(body, bgg_id=bgg_id, max_bytes=max_bytes, feed_pause=feed_pause)
    tag = root.tag
    if tag == "items":
        return _game_from_item(_select_item(root, bgg_id), bgg_id)
    if tag == "errors":
        messages = [m.strip() for m in root.itertext() if m.strip()]
        raise BggRequestError(
            f"BGG rejected the request: {_quote('; '.join(messages)) or 'no message'}",
            bgg_id=bgg_id,
        )
    if tag == "error":
        message = _quote(" ".join(" ".join(root.itertext()).split()))
        raise BggRateLimited(f"BGG refused the request: {message or 'no message'}", bgg_id=bgg_id)
    if tag == "message":
        message = _quote(" ".join((root.text or "").split()))
        raise BggTransientError(f"BGG queued the request: {message or 'no message'}", bgg_id=bgg_id)
    if _local_name(tag).lower() == "html":
        raise _html_error(bgg_id)
    raise BggBadResponse(
        f"BGG answer has an unexpected root element <{_quote(tag)}>", bgg_id=bgg_id
    )


def _parse_xml(body: bytes | str, *, bgg_id: int, max_bytes: int, feed_pause: float) -> Element:
    # Checked on the raw size first so a huge body costs nothing more than len().
    if len(body) > max_bytes or (
        isinstance(body, str) and len(body.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise BggBadResponse(
            f"BGG answer is larger than {max_bytes} bytes (refused)", bgg_id=bgg_id
        )
    text = _decode(body, bgg_id=bgg_id) if isinstance(body, bytes) else body
    try:
        return _feed(text, feed_pause)
    except DTDForbidden as exc:
        if (exc.name or "").lower() == "html":
            raise _html_error(bgg_id) from None
        raise BggBadResponse(
            "BGG answer contains a DTD or entity declarations (refused)", bgg_id=bgg_id
        ) from None
    except DefusedXmlException:
        raise BggBadResponse(
            "BGG answer contains a DTD or entity declarations (refused)", bgg_id=bgg_id
        ) from None
    except ParseError as exc:
        if _HTML_RE.search(text[:2048]):
            raise _html_error(bgg_id) from None
        raise BggBadResponse(f"BGG answer is not well-formed XML: {exc}", bgg_id=bgg_id) from None
    except UnicodeError as exc:
        # A str with lone surrogates cannot be handed to expat.
        raise BggBadResponse(
            f"BGG answer is not valid text: {_quote(str(exc))}", bgg_id=bgg_id
        ) from None


# What `_game_from_item` and `_raise_item_error` read of a top-level item; nothing else of it
# is built (see `_ThingTreeBuilder`).
_ITEM_CHILDREN: Final = frozenset(
    {
        "name",
        "link",
        "statistics",
        "yearpublished",
        "minplayers",
        "maxplayers",
        "playingtime",
        "minage",
        "description",
        "thumbnail",
        "image",
        "error",
    }
)


class _ThingTreeBuilder:
    """A `TreeBuilder` that leaves out the children of a top-level `<item>` nobody reads.

    A multi-megabyte answer is mostly `<versions>`, `<poll>`s, videos and comments: tens of
    thousands of elements. Building them cost most of the parse, and the garbage collector's
    full passes over them (tens of milliseconds each, holding the GIL) stalled the event loop
    even with the parse in a thread. Only `<items><item><CHILD>` with CHILD outside
    `_ITEM_CHILDREN` is skipped, subtree and all; every other answer is built whole.
    """

    def __init__(self) -> None:
        self._builder = TreeBuilder()
        self._path: list[str] = []
        self._skipping_at = 0  # depth of the skipped element, 0 while building

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        """An element opens."""
        self._path.append(tag)
        if self._skipping_at:
            return
        if (
            len(self._path) == 3
            and self._path[:2] == ["items", "item"]
            and (tag not in _ITEM_CHILDREN)
        ):
            self._skipping_at = 3
            return
        self._builder.start(tag, attrs)

    def end(self, tag: str) -> None:
        """An element closes."""
        depth = len(self._path)
        self._path.pop()
        if not self._skipping_at:
            self._builder.end(tag)
        elif depth == self._skipping_at:
            self._skipping_at = 0

    def data(self, text: str) -> None:
        """Text inside the current element."""
        if not self._skipping_at:
            self._builder.data(text)

    def close(self) -> Element:
        """The root element."""
        return self._builder.close()


def _feed(text: str, pause: float) -> Element:
    # A str makes pyexpat ignore the declared encoding, so no codec is looked up by name.
    parser = DefusedXMLParser(target=_ThingTreeBuilder(), forbid_dtd=True)
    for start in range(0, len(text), _FEED_CHARS):
        parser.feed(text[start : start + _FEED_CHARS])
        if pause:
            time.sleep(pause)
    root: Element = parser.close()
    return root


def _decode(body: bytes, *, bgg_id: int) -> str:
    encoding = "utf-8"
    for bom, codec in _BOMS:
        if body.startswith(bom):
            encoding = codec
            break
    else:
        match = _XML_DECL_ENCODING_RE.match(body)
        if match is not None:
            declared = match.group(1).decode("ascii").lower()
            if declared not in _ENCODINGS:
                raise BggBadResponse(
                    f"BGG answer declares an unsupported encoding {declared!r}",
                    bgg_id=bgg_id,
                )
            encoding = _ENCODINGS[declared]
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BggBadResponse(
            f"BGG answer is not well-formed XML: not valid {encoding} ({exc.reason})",
            bgg_id=bgg_id,
        ) from None


def _select_item(root: Element, bgg_id: int) -> Element:
    # findall("item") sees direct children only: the boardgameversion items nested in
    # <versions> have ids of their own and must never be mistaken for the game.
    items = root.findall("item")
    if not items:
        # BGG nests <error> in an <item>; an <error> straight under <items> is the same answer.
        _raise_item_error(root, bgg_id)
        raise GameNotFound(f"BGG has no item {bgg_id}", bgg_id=bgg_id)
    for item in items:
        if _parse_int(item.get("id")) == bgg_id:
            _raise_item_error(item, bgg_id)
            return item
    for item in items:
        _raise_item_error(item, bgg_id)
    if all(item.get("id") is None for item in items):
        raise BggBadResponse(
            "BGG answer has <item> elements without an id: not a thing answer", bgg_id=bgg_id
        )
    raise GameNotFound(f"BGG answer has no item {bgg_id}", bgg_id=bgg_id)


def _raise_item_error(item: Element, bgg_id: int) -> None:
    error = item.find("error")
    if error is None:
        return
    message = (error.get("message") or error.findtext("message") or "").strip()
    raise BggRequestError(
        f"BGG rejected the request: {_quote(message) or 'no message'}", bgg_id=bgg_id
    )


def _game_from_item(item: Element, bgg_id: int) -> BggGame:
    title = next(
        (
            (name.get("value") or "").strip()
            for name in item.findall("name")
            if name.get("type") == "primary"
        ),
        "",
    )
    if not title:
        raise BggBadResponse(f"BGG item {bgg_id} has no primary name", bgg_id=bgg_id)
    if len(title) > TITLE_MAX_LENGTH:
        title = title[: TITLE_MAX_LENGTH - 1].rstrip() + "…"

    links: dict[str, dict[str, None]] = {field: {} for field in _LINK_FIELDS.values()}
    for link in item.findall("link"):
        field = _LINK_FIELDS.get(link.get("type") or "")
        value = (link.get("value") or "").strip()
        if field is not None and value:
            # A dict keeps document order and drops repeats.
            links[field][value] = None

    ratings = item.find("statistics/ratings")
    average: float | None = None
    bayes: float | None = None
    rank: int | None = None
    if ratings is not None:
        average = _rating(_parse_float(_value_of(ratings, "average")))
        bayes = _rating(_parse_float(_value_of(ratings, "bayesaverage")))
        rank = next(
            (
                _positive(_parse_int(r.get("value")))
                for r in ratings.findall("ranks/rank")
                if r.get("name") == "boardgame"
            ),
            None,
        )

    year = _parse_int(_value_of(item, "yearpublished"))
    return BggGame(
        bgg_id=bgg_id,
        title=title,
        year_published=year or None,
        min_players=_positive(_parse_int(_value_of(item, "minplayers"))),
        max_players=_positive(_parse_int(_value_of(item, "maxplayers"))),
        playing_time=_positive(_parse_int(_value_of(item, "playingtime"))),
        min_age=_positive(_parse_int(_value_of(item, "minage"))),
        description=_description(item.findtext("description")),
        thumbnail_url=_url(item.findtext("thumbnail")),
        image_url=_url(item.findtext("image")),
        average_rating=average,
        bayes_average=bayes,
        bgg_rank=rank,
        categories=tuple(links["categories"]),
        mechanics=tuple(links["mechanics"]),
        designers=tuple(links["designers"]),
        publishers=tuple(links["publishers"]),
        is_expansion=item.get("type") == "boardgameexpansion",
    )


def _value_of(parent: Element, tag: str) -> str | None:
    child = parent.find(tag)
    return None if child is None else child.get("value")


def _parse_int(raw: str | None) -> int | None:
    # A strict pattern, because int() also takes "1_000" and non-ASCII digits.
    if raw is None or not _INT_RE.fullmatch(raw := raw.strip()):
        return None
    value = int(raw)
    return value if -_INT_MAX <= value <= _INT_MAX else None


def _parse_float(raw: str | None) -> float | None:
    # A strict pattern, because float() also takes "nan", "inf" and "1_0".
    if raw is None or not _FLOAT_RE.fullmatch(raw := raw.strip()):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _rating(value: float | None) -> float | None:
    return value if value is not None and 0 < value <= _RATING_MAX else None


def _description(raw: str | None) -> str | None:
    text = html.unescape(raw or "").strip()
    return text or None


def _url(raw: str | None) -> str | None:
    url = (raw or "").strip()
    if url.startswith("//"):
        url = "https:" + url
    if len(url) > URL_MAX_LENGTH or not _URL_RE.fullmatch(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:  # e.g. "http://[::1/" or "http://host:99999/"
        return None
    if "@" in parts.netloc or not parts.hostname:
        return None
    return url


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _quote(text: str) -> str:
    return text if len(text) <= _QUOTE_MAX else text[: _QUOTE_MAX - 3] + "..."


def _html_error(bgg_id: int) -> BggBadResponse:
    return BggBadResponse("BGG answer is an HTML page, not XML", bgg_id=bgg_id)
