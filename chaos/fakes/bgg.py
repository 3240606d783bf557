"""A fake BoardGameGeek XML API2: `GET /xmlapi2/thing?id=<id>[,<id>...]&stats=1`.

Canonical base URL: `<server url>/xmlapi2` (what `BGG_BASE_URL` should be, as in production,
`https://boardgamegeek.com/xmlapi2`); `bgg_base_url(url)` builds it. The same routes also
answer without the prefix (`<server url>/thing`), and the request log and fault rules see the
logical path without it (`/thing`) either way.

What `thing` answers (HTTP 200, `text/xml; charset=utf-8`, like BGG):

- ids with a real fixture: 28720 (Brass: Lancashire), 223555 (Scythe: The Wind Gambit,
  an expansion), 1001 (Vendetta, the 2026 format), 31260 (Agricola) and 283 (from the
  multi-item file). A request for exactly one of the first three (or exactly `31260,283`)
  gets the file byte for byte; other combinations get the top-level `<item>` elements cut
  out of the files (nested version `<item>`s stay inside their parent).
- other ids in `1..known_max` (default 2,000,000) and not in `unknown`: a synthetic
  `boardgame`, deterministic from the id, built like the Brass fixture (primary and
  alternate names, BGG double-escaped description `&amp;#10;`, year, players, a poll,
  playing times, min age, category/mechanic/family/designer/artist/publisher links,
  `<statistics>` with ranks, `Not Ranked` when few users rated it, only with `stats=1`),
  its thumbnail and image on `cdn_base_url` (`/images/pic<id>_t.jpg`, `/images/pic<id>.jpg`).
- ids outside that range, in `unknown`, or filtered out by `type=`: left out; when nothing
  is left, the real empty `<items>` answer (`thing_10000000_nonexistent_empty.xml`).
- no `id`, a blank one or a non-numeric one: the real `Invalid Item` error body.

With `collection_games=True`, the 40 games of the real collection fixture answer too, as
`thing` items built from its values (`chaos.fakes.collection`; for the demo).

If `cdn_base_url` is given, the `<thumbnail>`/`<image>` URLs of the fixture items are also
rewritten to `<cdn>/images/<file name>` so a run never reaches the real CDN. With
`api_token` set, requests without `Authorization: Bearer <token>` get 401.
Other paths get 404, other methods 405 (HTML pages, as nginx would send).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from html import escape as html_escape
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from chaos.fakes.app import Answer, FakeApp, html_answer
from chaos.fakes.bodies import XML_CONTENT_TYPE, Fixtures
from chaos.fakes.collection import COLLECTION_FIXTURE, collection_items
from chaos.fakes.faults import FaultEngine, RequestInfo
from chaos.fakes.log import RequestLog

PREFIX = "/xmlapi2"
THING_PATH = "/thing"
DEFAULT_KNOWN_MAX = 2_000_000
DEFAULT_CDN_URL = "https://cf.geekdo-images.com"
TERMS_OF_USE = "https://boardgamegeek.com/xmlapi/termsofuse"
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'

SINGLE_FIXTURES: dict[int, str] = {
    28720: "thing_28720_brass_lancashire_stats.xml",
    223555: "thing_223555_expansion_scythe_wind_gambit_stats.xml",
    1001: "thing_1001_vendetta_stats_versions_marketplace_2026.xml",
}
MULTI_FIXTURE = "thing_multi_31260_283_stats_versions_videos.xml"
MULTI_IDS = (31260, 283)
FIXTURE_IDS = frozenset(SINGLE_FIXTURES) | frozenset(MULTI_IDS)

_ITEM_TAG = re.compile(r"<(/?)item\b[^>]*?(/?)>")
_ITEM_ATTRS = re.compile(r'<item\b[^>]*?\btype="([^"]*)"[^>]*?\bid="(\d+)"')
_IMAGE_URL = re.compile(r"(<(thumbnail|image)>)\s*(https?://[^<\s]+)\s*(</\2>)")


def bgg_base_url(server_url: str) -> str:
    """The `BGG_BASE_URL` for a fake BGG running at `server_url`."""
    return server_url.rstrip("/") + PREFIX


def split_items(xml: str) -> list[str]:
    """The top-level `<item>...</item>` elements of a `thing` answer, as raw text."""
    items: list[str] = []
    depth = 0
    start = 0
    for tag in _ITEM_TAG.finditer(xml):
        closing, self_closing = tag.group(1) == "/", tag.group(2) == "/"
        if closing:
            depth -= 1
            if depth == 0:
                items.append(xml[start : tag.end()])
        elif self_closing:
            if depth == 0:
                items.append(tag.group(0))
        else:
            if depth == 0:
                start = tag.start()
            depth += 1
    return items


def wrap_items(items: Iterable[str]) -> bytes:
    body = "\n".join(items)
    return f'{XML_DECLARATION}<items termsofuse="{TERMS_OF_USE}">{body}\n</items>'.encode()


# --------------------------------------------------------------------------- synthetic games

_ADJECTIVES = (
    "Ancient", "Lost", "Crimson", "Hidden", "Iron", "Golden", "Silent", "Northern", "Clockwork",
    "Forgotten", "Emerald", "Stormy", "Royal", "Little", "Grand", "Sunken", "Wild", "Mystic",
)  # fmt: skip
_NOUNS = (
    "Harbors", "Empires", "Railways", "Gardens", "Kingdoms", "Merchants", "Caravans", "Orchards",
    "Citadels", "Voyages", "Dragons", "Canals", "Lighthouses", "Markets", "Castles", "Bees",
)  # fmt: skip
_SUFFIXES = (
    "", "", "", ": The Card Game", ": Second Edition", " & Friends", " of Zürich",
    ": Café Society", " – Deluxe", ": Tom's Expansion Pack",
)  # fmt: skip
_CATEGORIES = (
    (1021, "Economic"), (1088, "Industry / Manufacturing"), (1011, "Transportation"),
    (1002, "Card Game"), (1009, "Abstract Strategy"), (1010, "Fantasy"), (1013, "Farming"),
    (1026, "Negotiation"), (1035, "Medieval"), (1084, "Environmental"),
)  # fmt: skip
_MECHANICS = (
    (2040, "Hand Management"), (2081, "Route/Network Building"), (2041, "Open Drafting"),
    (2004, "Set Collection"), (2082, "Worker Placement"), (2072, "Dice Rolling"),
    (2664, "Deck, Bag, and Pool Building"), (2008, "Trading"), (2002, "Tile Placement"),
)  # fmt: skip
_DESIGNERS = (
    (6, "Martin Wallace"), (3, "Michael Kiesling"), (2, "Wolfgang Kramer"),
    (9714, "Uwe Rosenberg"), (1527, "Reiner Knizia"), (10525, "Vital Lacerda"),
)  # fmt: skip
_ARTISTS = ((70571, "Lina Cossette"), (11802, "Peter Dennis"), (12011, "Eckhard Freytag"))
_PUBLISHERS = (
    (21765, "Roxley"), (7, "Warfrog Games"), (39, "Pegasus Spiele"), (597, "Eagle-Gryphon Games"),
    (8832, "Funforge"), (4932, "White Goblin Games"), (7097, "FRED Distribution, Inc."),
)  # fmt: skip


def synthetic_name(bgg_id: int) -> str:
    """The primary name of a synthetic game (deterministic from the id)."""
    rng = random.Random(bgg_id)
    article = "The " if rng.random() < 0.2 else ""
    return f"{article}{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}{rng.choice(_SUFFIXES)}"


def synthetic_item(bgg_id: int, *, stats: bool, cdn_base_url: str) -> str:
    """A `<item type="boardgame">` for `bgg_id`, shaped like the real Brass answer."""
    rng = random.Random(bgg_id)
    name = synthetic_name(bgg_id)
    rng = random.Random(f"details:{bgg_id}")
    alternate = f"{rng.choice(_NOUNS)} {rng.choice(_ADJECTIVES)}"
    year = rng.randint(1950, 2024)
    min_players = rng.randint(1, 3)
    max_players = rng.randint(min_players, min_players + 5)
    playing_time = rng.choice((15, 20, 30, 45, 60, 90, 120, 180, 240))
    min_time = max(5, playing_time // rng.choice((1, 2)))
    min_age = rng.choice((6, 8, 10, 12, 13, 14, 16))
    cdn = cdn_base_url.rstrip("/")
    sortindex = 5 if name.startswith("The ") else 1

    # BGG double-escapes: the description's HTML entities are XML-escaped once more.
    description_html = (
        f"{html_escape(name)} &mdash; first published in {year} &mdash; is a game for "
        f"{min_players} to {max_players} players.&#10;&#10;Players build &quot;engines&quot; "
        f"of cards &amp; tiles, trade goods and score points.&#10;&#10;&#10;    Build&#10;"
        f"    Trade&#10;    Score&#10;&#10;Game #{bgg_id} in the fake catalogue.&#10;&#10;"
    )

    def link(kind: str, pool: tuple[tuple[int, str], ...], low: int, high: int) -> list[str]:
        chosen = rng.sample(pool, rng.randint(low, min(high, len(pool))))
        return [
            f'\t\t<link type="{kind}" id="{ident}" value={quoteattr(value)} />'
            for ident, value in chosen
        ]

    lines = [
        f'<item type="boardgame" id="{bgg_id}">',
        f"\t<thumbnail>{xml_escape(f'{cdn}/images/pic{bgg_id}_t.jpg')}</thumbnail>",
        f"\t<image>{xml_escape(f'{cdn}/images/pic{bgg_id}.jpg')}</image>",
        f'\t<name type="primary" sortindex="{sortindex}" value={quoteattr(name)} />',
        f'\t<name type="alternate" sortindex="1" value={quoteattr(alternate)} />',
        f"\t<description>{xml_escape(description_html)}</description>",
        f'\t<yearpublished value="{year}" />',
        f'\t<minplayers value="{min_players}" />',
        f'\t<maxplayers value="{max_players}" />',
        '\t<poll name="suggested_numplayers" title="User Suggested Number of Players" '
        f'totalvotes="{rng.randint(0, 400)}">',
    ]
    for players in range(min_players, max_players + 1):
        lines.append(f'\t\t<results numplayers="{players}">')
        for verdict in ("Best", "Recommended", "Not Recommended"):
            votes = rng.randint(0, 150)
            lines.append(f'\t\t\t<result value="{verdict}" numvotes="{votes}" />')
        lines.append("\t\t</results>")
    lines += [
        "\t</poll>",
        f'\t<playingtime value="{playing_time}" />',
        f'\t<minplaytime value="{min_time}" />',
        f'\t<maxplaytime value="{playing_time}" />',
        f'\t<minage value="{min_age}" />',
        *link("boardgamecategory", _CATEGORIES, 1, 3),
        *link("boardgamemechanic", _MECHANICS, 1, 4),
        f'\t\t<link type="boardgamefamily" id="{10000 + bgg_id % 997}" '
        f'value="Fake: Family {bgg_id % 997}" />',
        *link("boardgamedesigner", _DESIGNERS, 1, 2),
        *link("boardgameartist", _ARTISTS, 0, 2),
        *link("boardgamepublisher", _PUBLISHERS, 1, 3),
    ]
    if stats:
        lines += _statistics(rng, bgg_id)
    lines.append("</item>")
    return "\n".join(lines)


def _statistics(rng: random.Random, bgg_id: int) -> list[str]:
    users = 0 if rng.random() < 0.1 else rng.randint(1, 60_000)
    average = round(rng.uniform(4.5, 9.0), 5) if users else 0
    bayes = round(5.5 + (average - 5.5) * min(1.0, users / 20_000), 5) if users >= 30 else 0
    ranked = users >= 30
    rank = str(1 + (bgg_id * 7919) % 25_000) if ranked else "Not Ranked"
    family_rank = str(1 + (bgg_id * 104_729) % 4_000) if ranked else "Not Ranked"
    bayes_attr = str(bayes) if ranked else "Not Ranked"
    weight = round(rng.uniform(1.0, 4.8), 4) if users else 0
    return [
        '\t<statistics page="1">',
        "\t\t<ratings>",
        f'\t\t\t<usersrated value="{users}" />',
        f'\t\t\t<average value="{average}" />',
        f'\t\t\t<bayesaverage value="{bayes}" />',
        "\t\t\t<ranks>",
        '\t\t\t\t<rank type="subtype" id="1" name="boardgame" friendlyname="Board Game Rank" '
        f'value="{rank}" bayesaverage="{bayes_attr}" />',
        '\t\t\t\t<rank type="family" id="5497" name="strategygames" '
        f'friendlyname="Strategy Game Rank" value="{family_rank}" bayesaverage="{bayes_attr}" />',
        "\t\t\t</ranks>",
        f'\t\t\t<stddev value="{round(rng.uniform(0.8, 2.0), 5) if users else 0}" />',
        '\t\t\t<median value="0" />',
        f'\t\t\t<owned value="{users + rng.randint(0, users + 1)}" />',
        f'\t\t\t<trading value="{rng.randint(0, users // 20 + 1)}" />',
        f'\t\t\t<wanting value="{rng.randint(0, users // 10 + 1)}" />',
        f'\t\t\t<wishing value="{rng.randint(0, users // 3 + 1)}" />',
        f'\t\t\t<numcomments value="{users // 4}" />',
        f'\t\t\t<numweights value="{users // 12}" />',
        f'\t\t\t<averageweight value="{weight}" />',
        "\t\t</ratings>",
        "\t</statistics>",
    ]


# --------------------------------------------------------------------------- the catalogue


class BggCatalogue:
    """Which ids exist and what their `<item>` looks like."""

    def __init__(
        self,
        *,
        fixtures: Fixtures,
        known_max: int = DEFAULT_KNOWN_MAX,
        unknown: Iterable[int] = (),
        cdn_base_url: str | None = None,
        collection_games: bool = False,
    ) -> None:
        self.fixtures = fixtures
        self.known_max = known_max
        self.unknown = frozenset(unknown)
        self.cdn_base_url = cdn_base_url
        self._files: dict[str, bytes] = {}  # file name -> body (image URLs rewritten)
        self._fixture_items: dict[int, tuple[str, str]] = {}  # id -> (type, raw item)
        for name in (*SINGLE_FIXTURES.values(), MULTI_FIXTURE):
            body = self._files[name] = self._rewrite(self.fixtures.read(name))
            for item in split_items(body.decode()):
                attrs = _ITEM_ATTRS.match(item)
                if attrs is not None:
                    self._fixture_items[int(attrs.group(2))] = (attrs.group(1), item)
        if collection_games:
            # Off by default: the scenarios draw ids at random and expect synthetic games.
            body = self._rewrite(self.fixtures.read(COLLECTION_FIXTURE))
            for bgg_id, (kind, item) in collection_items(body).items():
                self._fixture_items.setdefault(bgg_id, (kind, item))

    @property
    def real_ids(self) -> list[int]:
        """The ids answered with real data (the fixtures, and the collection when enabled)."""
        return list(self._fixture_items)

    def exists(self, bgg_id: int) -> bool:
        if bgg_id in FIXTURE_IDS or bgg_id in self._fixture_items:
            return True
        return 1 <= bgg_id <= self.known_max and bgg_id not in self.unknown

    def thing(self, ids: list[int], *, stats: bool, types: frozenset[str] | None) -> bytes:
        """The body of `thing?id=<ids>`."""
        if types is None and len(ids) == 1 and ids[0] in SINGLE_FIXTURES:
            return self._files[SINGLE_FIXTURES[ids[0]]]
        if types is None and tuple(ids) == MULTI_IDS:
            return self._files[MULTI_FIXTURE]
        items: list[str] = []
        cdn = self.cdn_base_url or DEFAULT_CDN_URL
        for bgg_id in ids:
            if not self.exists(bgg_id):
                continue
            if bgg_id in self._fixture_items:
                kind, item = self._fixture_items[bgg_id]
            else:
                kind, item = "boardgame", synthetic_item(bgg_id, stats=stats, cdn_base_url=cdn)
            if types is None or kind in types:
                items.append(item)
        return wrap_items(items) if items else self.fixtures.empty

    def _rewrite(self, body: bytes) -> bytes:
        if self.cdn_base_url is None:
            return body
        cdn = self.cdn_base_url.rstrip("/")

        def replace(match: re.Match[str]) -> str:
            file_name = match.group(3).rsplit("/", 1)[-1] or "image.jpg"
            return f"{match.group(1)}{xml_escape(f'{cdn}/images/{file_name}')}{match.group(4)}"

        return _IMAGE_URL.sub(replace, body.decode()).encode()


class BggApp(FakeApp):
    """The fake BGG as an ASGI app (run it with `chaos.fakes.server.run_in_thread`)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        cdn_base_url: str | None = None,
        known_max: int = DEFAULT_KNOWN_MAX,
        unknown: Iterable[int] = (),
        api_token: str | None = None,
        fixtures_dir: Path | str | None = None,
        engine: FaultEngine | None = None,
        log: RequestLog | None = None,
        collection_games: bool = False,
    ) -> None:
        fixtures = Fixtures(fixtures_dir)
        self.catalogue = BggCatalogue(
            fixtures=fixtures,
            known_max=known_max,
            unknown=unknown,
            cdn_base_url=cdn_base_url,
            collection_games=collection_games,
        )
        self.api_token = api_token
        super().__init__(
            "bgg",
            self.handle,
            engine=engine,
            log=log,
            seed=seed,
            fixtures=fixtures,
            strip_prefix=PREFIX,
        )

    def handle(self, request: RequestInfo) -> Answer:
        """The normal (fault-free) answer."""
        if request.path != THING_PATH:
            return html_answer(404)
        if request.method not in ("GET", "HEAD"):
            return html_answer(405)
        token = self.api_token
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return html_answer(401)
        raw_ids = [part.strip() for part in request.query.get("id", "").split(",")]
        if not all(part.isascii() and part.isdigit() for part in raw_ids):
            return Answer(200, self.fixtures.invalid_item, XML_CONTENT_TYPE)
        ids = list(dict.fromkeys(int(part) for part in raw_ids))
        type_param = request.query.get("type", "")
        types = frozenset(t.strip() for t in type_param.split(",") if t.strip()) or None
        body = self.catalogue.thing(ids, stats=request.query.get("stats") == "1", types=types)
        return Answer(200, body, XML_CONTENT_TYPE)


#: The constructor under the name the fakes' users know (keyword arguments only, as for
#: `BggApp`).
create_bgg_app = BggApp
