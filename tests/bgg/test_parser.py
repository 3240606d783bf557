"""The `thing` parser against every real BGG answer in fixtures/bgg, hostile XML, and
Hypothesis-generated or damaged documents."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.bgg.errors import (
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggRequestError,
    BggTransientError,
    GameNotFound,
)
from system.bgg.models import TITLE_MAX_LENGTH, URL_MAX_LENGTH, BggGame
from system.bgg.parser import parse_thing
from tests.strategies import (
    almost_numbers,
    mutations,
    thing_documents,
    xml_attribute_text,
    xmlish_text,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bgg"
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("*.xml"))


@dataclass(frozen=True)
class Parses:
    """Asking for `bgg_id` gives `game` (compared without its description) and a
    description that starts and ends as given."""

    bgg_id: int
    game: BggGame
    description_start: str
    description_end: str
    description_has_newline: bool = True


@dataclass(frozen=True)
class Fails:
    """Asking for `bgg_id` raises exactly `error`, whose message contains `message`."""

    bgg_id: int
    error: type[BggError]
    message: str


BRASS = BggGame(
    bgg_id=28720,
    title="Brass: Lancashire",
    year_published=2007,
    min_players=2,
    max_players=4,
    playing_time=120,
    min_age=14,
    thumbnail_url="https://cf.geekdo-images.com/thumb/img/bY3T4SYX6lAhtfkUGJkC1laqnVw=/fit-in/200x150/pic3469216.jpg",
    image_url="https://cf.geekdo-images.com/original/img/l4dwCcl4Vz0r4TD-2RgQ_uoHvWM=/0x0/pic3469216.jpg",
    average_rating=8.11394,
    bayes_average=7.90044,
    bgg_rank=23,
    categories=("Economic", "Industry / Manufacturing", "Transportation"),
    mechanics=("Hand Management", "Route/Network Building"),
    designers=("Martin Wallace",),
    publishers=(
        "Roxley",
        "Warfrog Games",
        "Crowd Games",
        "Eagle-Gryphon Games",
        "FRED Distribution, Inc.",
        "Funforge",
        "Pegasus Spiele",
        "Wargames Club Publishing",
        "White Goblin Games",
    ),
    is_expansion=False,
)

VENDETTA = BggGame(
    bgg_id=1001,
    title="Vendetta",
    year_published=1988,
    min_players=2,
    max_players=4,
    playing_time=30,
    min_age=8,
    thumbnail_url="https://cf.geekdo-images.com/f98JQ3qEwxA88GBa69y3XA__small/img/-eAaT7_O6QdB2sDnsEOrF-7lDlY=/fit-in/200x150/filters:strip_icc()/pic193052.jpg",
    image_url="https://cf.geekdo-images.com/f98JQ3qEwxA88GBa69y3XA__original/img/p4Gxsmh5GZYLhosQq6QenPZSTf8=/0x0/filters:format(jpeg)/pic193052.jpg",
    average_rating=5.13745,
    bayes_average=5.45857,
    bgg_rank=29432,
    categories=("Mafia",),
    mechanics=(
        "Dice Rolling",
        "Events",
        "Race",
        "Roll / Spin and Move",
        "Static Capture",
        "Track Movement",
    ),
    designers=("Carlo Monticolombi",),
    # Parker Brothers also appears in every nested <versions> item: it must not repeat.
    publishers=("Borras Plana S.A.", "Elfin Design", "El Greco", "Parker Brothers", "Playmix"),
    is_expansion=False,
)

WIND_GAMBIT = BggGame(
    bgg_id=223555,
    title="Scythe: The Wind Gambit",
    year_published=2017,
    min_players=1,
    max_players=7,
    playing_time=140,
    min_age=14,
    thumbnail_url="https://cf.geekdo-images.com/thumb/img/U-VU9r_6-0EhwRSq1Um-02hX93c=/fit-in/200x150/pic3487272.jpg",
    image_url="https://cf.geekdo-images.com/original/img/LH298dHMe4ltRu6bNerlqv2gS0Q=/0x0/pic3487272.jpg",
    average_rating=8.15663,
    bayes_average=7.22754,
    bgg_rank=None,  # "Not Ranked"
    categories=("Economic", "Expansion for Base-game", "Transportation", "Wargame"),
    mechanics=("Area Control / Area Influence", "Point to Point Movement"),
    designers=("Kai Starck", "Jamey Stegmaier"),
    publishers=(
        "Stonemaier Games",
        "Albi",
        "Arclight",
        "Crowd Games",
        "Delta Vision Publishing",
        "Feuerland Spiele",
        "Ghenos Games",
        "Maldito Games",
        "Matagot",
        "PHALANX",
        "Playfun Games",
    ),
    is_expansion=True,
)

AGRICOLA = BggGame(
    bgg_id=31260,
    title="Agricola",
    year_published=2007,
    min_players=1,
    max_players=5,
    playing_time=150,
    min_age=12,
    thumbnail_url="https://cf.geekdo-images.com/images/pic259085_t.jpg",
    image_url="https://cf.geekdo-images.com/images/pic259085.jpg",
    average_rating=8.0345,
    bayes_average=7.93694,
    bgg_rank=15,
    categories=("Animals", "Economic", "Farming"),
    mechanics=(
        "Area Enclosure",
        "Card Drafting",
        "Hand Management",
        "Variable Player Powers",
        "Worker Placement",
    ),
    designers=("Uwe Rosenberg",),
    publishers=(
        "Lookout Games",
        "999 Games",
        "Brain Games",
        "Compaya.hu - Gamer Café Kft.",
        "Devir",
        "Filosofia Éditions",
        "Hobby Japan",
        "Hobby World",
        "HomoLudicus",
        "Korea Boardgames co., Ltd.",
        "Lacerta",
        "MINDOK",
        "Smart Ltd",
        "Stratelibri",
        "Swan Panasia Co., Ltd.",
        "Ystari Games",
        "Z-Man Games",
    ),
    is_expansion=False,
)

ADVANCED_THIRD_REICH = BggGame(
    bgg_id=283,
    title="Advanced Third Reich",
    year_published=1992,
    min_players=2,
    max_players=6,
    playing_time=2480,
    min_age=12,
    thumbnail_url="https://cf.geekdo-images.com/images/pic194375_t.jpg",
    image_url="https://cf.geekdo-images.com/images/pic194375.jpg",
    average_rating=6.7602,
    bayes_average=5.93935,
    bgg_rank=2288,
    categories=("Wargame", "World War II"),
    mechanics=("Dice Rolling", "Hex-and-Counter", "Simulation"),
    designers=("Bruce Harper",),
    publishers=("The Avalon Hill Game Co",),
    is_expansion=False,
)

EXPECTED: dict[str, tuple[Parses | Fails, ...]] = {
    "thing_28720_brass_lancashire_stats.xml": (
        Parses(
            28720,
            BRASS,
            # &amp;mdash; in the raw bytes: escaped twice, unescaped once by XML, once by us.
            description_start="Brass: Lancashire — first published as Brass — is an economic",
            description_end="to make it slightly less terrible.",
        ),
    ),
    "thing_1001_vendetta_stats_versions_marketplace_2026.xml": (
        Parses(
            1001,
            VENDETTA,
            description_start='Move your "Godfather" safely through town.',
            description_end="take hits from the hit man in the car.",
            # The repo author decoded the entities; only trailing whitespace was left.
            description_has_newline=False,
        ),
        # The id of a nested <item type="boardgameversion">, never a top-level item.
        Fails(111618, GameNotFound, "111618"),
    ),
    "thing_223555_expansion_scythe_wind_gambit_stats.xml": (
        Parses(
            223555,
            WIND_GAMBIT,
            description_start="Description from the publisher:\n\nMankind has long",
            description_end="now available from retailers worldwide.",
        ),
        # 169786 (Scythe) is only a <link type="boardgameexpansion" inbound="true">.
        Fails(169786, GameNotFound, "169786"),
    ),
    "thing_multi_31260_283_stats_versions_videos.xml": (
        Parses(
            31260,
            AGRICOLA,
            description_start="Description from BoardgameNews\n\nIn Agricola, you're a farmer",
            description_end="react to your opponents' actions.",
        ),
        Parses(
            283,
            ADVANCED_THIRD_REICH,
            description_start="Advanced Third Reich is a board wargame",
            description_end="a turn represents three months of movement and fighting.",
            description_has_newline=False,
        ),
        Fails(20720, GameNotFound, "20720"),  # a nested boardgameversion
        Fails(999, GameNotFound, "999"),
    ),
    "thing_10000000_nonexistent_empty.xml": (Fails(10000000, GameNotFound, "10000000"),),
    "thing_1_type_rpgitem_no_match_empty.xml": (Fails(1, GameNotFound, "1"),),
    "thing_without_id_invalid_item_error.xml": (Fails(0, BggRequestError, "Invalid Item"),),
    "collection_invalid_username_errors.xml": (
        Fails(1, BggRequestError, "Invalid username specified"),
    ),
    "error_429_rate_limit_exceeded.xml": (Fails(1, BggRateLimited, "Rate limit exceeded."),),
    "collection_202_accepted_message.xml": (
        Fails(1, BggTransientError, "accepted and will be processed"),
    ),
    # A collection's <item>s have objectid, not id: the wrong kind of answer, not "no game".
    "collection_fagentu007_stats.xml": (Fails(147253, BggBadResponse, "without an id"),),
}

# (body, id) pairs that parse to a game: mutating them reaches the deep parts of the parser.
GAME_SOURCES = [
    ((FIXTURES / name).read_bytes(), case.bgg_id)
    for name, cases in EXPECTED.items()
    for case in cases
    if isinstance(case, Parses)
]
ALL_SOURCES = GAME_SOURCES + [
    ((FIXTURES / name).read_bytes(), case.bgg_id)
    for name, cases in EXPECTED.items()
    for case in cases
    if isinstance(case, Fails)
]


def _check(body: bytes | str, case: Parses | Fails) -> None:
    if isinstance(case, Fails):
        with pytest.raises(BggError) as info:
            parse_thing(body, bgg_id=case.bgg_id)
        assert type(info.value) is case.error
        assert case.message in info.value.message
        assert info.value.bgg_id == case.bgg_id
        return
    game = parse_thing(body, bgg_id=case.bgg_id)
    assert dataclasses.replace(game, description=None) == case.game
    assert game.average_rating == pytest.approx(case.game.average_rating, abs=1e-3)
    description = game.description
    assert description is not None
    assert description.startswith(case.description_start)
    assert description.endswith(case.description_end)
    assert description == description.strip()
    assert "&#10;" not in description
    assert "&amp;" not in description
    assert ("\n" in description) is case.description_has_newline


def test_fixture_directory_is_not_empty() -> None:
    assert len(FIXTURE_FILES) >= 11


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_real_fixture(name: str) -> None:
    if name not in EXPECTED:
        pytest.fail(f"fixtures/bgg/{name} has no expectation in EXPECTED: add one")
    raw = (FIXTURES / name).read_bytes()
    for case in EXPECTED[name]:
        _check(raw, case)
        _check(raw.decode("utf-8"), case)


def test_every_expectation_has_a_fixture() -> None:
    assert set(EXPECTED) <= set(FIXTURE_FILES)


# --- hand-written documents -------------------------------------------------------------


def _thing(children: str, *, item_type: str = "boardgame", item_id: int = 7) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><items><item type="{item_type}" id="{item_id}">'
        f'<name type="primary" sortindex="1" value="Game" />{children}</item></items>'
    )


def test_zeros_mean_unknown() -> None:
    game = parse_thing(
        _thing(
            '<yearpublished value="0" /><minplayers value="0" /><maxplayers value="0" />'
            '<playingtime value="0" /><minage value="0" />'
            '<statistics><ratings><average value="0" /><bayesaverage value="0" />'
            '<ranks><rank name="boardgame" value="0" /></ranks></ratings></statistics>'
        ),
        bgg_id=7,
    )
    assert game == BggGame(bgg_id=7, title="Game")


def test_negative_year_is_kept_but_negative_counts_are_not() -> None:
    game = parse_thing(
        _thing('<yearpublished value="-2200" /><minplayers value="-1" /><minage value="-3" />'),
        bgg_id=7,
    )
    assert (game.year_published, game.min_players, game.min_age) == (-2200, None, None)


@pytest.mark.parametrize(
    "value",
    ["", " ", "abc", "1_000", "١٢", "1e3", "2.5", "0x1F", "9" * 30, "2147483648", "nan"],
)
def test_values_that_are_not_ints_become_none(value: str) -> None:
    game = parse_thing(
        _thing(
            f'<yearpublished value="{value}" /><maxplayers value="{value}" />'
            f'<statistics><ratings><ranks><rank name="boardgame" value="{value}" />'
            "</ranks></ratings></statistics>"
        ),
        bgg_id=7,
    )
    assert (game.year_published, game.max_players, game.bgg_rank) == (None, None, None)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "10.5", "1_0", "N/A", ""])
def test_ratings_outside_the_scale_become_none(value: str) -> None:
    game = parse_thing(
        _thing(f'<statistics><ratings><average value="{value}" /></ratings></statistics>'),
        bgg_id=7,
    )
    assert game.average_rating is None


def test_whitespace_around_numbers_is_tolerated() -> None:
    game = parse_thing(_thing('<minplayers value=" 3 " />'), bgg_id=7)
    assert game.min_players == 3


def test_rank_is_the_boardgame_rank_not_a_family_rank() -> None:
    game = parse_thing(
        _thing(
            '<statistics><ratings><ranks><rank name="strategygames" value="3" />'
            '<rank name="boardgame" value="42" /></ranks></ratings></statistics>'
        ),
        bgg_id=7,
    )
    assert game.bgg_rank == 42


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("//cf.geekdo-images.com/pic1.jpg", "https://cf.geekdo-images.com/pic1.jpg"),
        ("  https://cf.geekdo-images.com/pic1.jpg\n", "https://cf.geekdo-images.com/pic1.jpg"),
        ("http://example.org/a.png", "http://example.org/a.png"),
        ("javascript:alert(1)", None),
        ("/relative/path.png", None),
        ("https://", None),
        ("", None),
    ],
)
def test_image_urls(raw: str, expected: str | None) -> None:
    game = parse_thing(_thing(f"<thumbnail>{raw}</thumbnail><image>{raw}</image>"), bgg_id=7)
    assert (game.thumbnail_url, game.image_url) == (expected, expected)


@pytest.mark.parametrize(
    "raw",
    [
        "https://user:pass@cf.geekdo-images.com/pic1.jpg",
        "https://token@cf.geekdo-images.com/pic1.jpg",
        "//user:pass@cf.geekdo-images.com/pic1.jpg",
        "https://cf.geekdo-images.com/" + "p" * (URL_MAX_LENGTH - 28),
        "http://[::1/pic.png",
        "http://cf.geekdo-images.com:99999/pic.png",
    ],
    ids=["user-password", "user", "protocol-relative", "too-long", "bad-ipv6", "bad-port"],
)
def test_image_urls_that_cannot_be_stored_or_fetched_become_none(raw: str) -> None:
    """A URL over the column size, or one carrying credentials (sent as Basic auth, shown
    publicly), is dropped rather than stored or failing the insert."""
    game = parse_thing(_thing(f"<thumbnail>{raw}</thumbnail><image>{raw}</image>"), bgg_id=7)
    assert (game.thumbnail_url, game.image_url) == (None, None)


def test_url_of_exactly_the_column_size_is_kept() -> None:
    url = "https://cf.geekdo-images.com/" + "p" * (URL_MAX_LENGTH - 29)
    assert len(url) == URL_MAX_LENGTH
    game = parse_thing(_thing(f"<thumbnail>{url}</thumbnail>"), bgg_id=7)
    assert game.thumbnail_url == url


def test_title_over_the_column_size_is_cut_with_an_ellipsis() -> None:
    long_title = "Brass " * 200
    body = _thing("").replace('value="Game"', f'value="{long_title}"')
    game = parse_thing(body, bgg_id=7)
    assert len(game.title) == TITLE_MAX_LENGTH
    assert game.title.endswith("…") and long_title.startswith(game.title[:-1])
    exact = "x" * TITLE_MAX_LENGTH
    game = parse_thing(_thing("").replace('value="Game"', f'value="{exact}"'), bgg_id=7)
    assert game.title == exact


def test_description_is_unescaped_once_and_stripped() -> None:
    game = parse_thing(
        _thing(
            "<description>  A &amp;amp; B&amp;#10;&amp;#10;"
            "&amp;quot;C&amp;quot;&amp;#10; </description>"
        ),
        bgg_id=7,
    )
    assert game.description == 'A & B\n\n"C"'


def test_blank_description_is_none() -> None:
    game = parse_thing(_thing("<description> &amp;#10; </description>"), bgg_id=7)
    assert game.description is None


def test_links_keep_document_order_and_drop_repeats_and_blanks() -> None:
    game = parse_thing(
        _thing(
            '<link type="boardgamedesigner" value="B" />'
            '<link type="boardgamedesigner" value="A" />'
            '<link type="boardgamedesigner" value=" B " />'
            '<link type="boardgamedesigner" value=" " />'
            '<link type="boardgameartist" value="C" />'
        ),
        bgg_id=7,
    )
    assert game.designers == ("B", "A")
    assert game.categories == game.mechanics == game.publishers == ()


def test_first_top_level_item_with_the_id_wins_over_nested_ones() -> None:
    body = (
        '<items><item type="boardgame" id="1"><name type="primary" value="Other" /></item>'
        '<item type="boardgame" id="2"><name type="primary" value="Wanted" />'
        '<versions><item type="boardgameversion" id="2"><name type="primary" value="Version" />'
        "</item></versions></item></items>"
    )
    assert parse_thing(body, bgg_id=2).title == "Wanted"
    assert parse_thing(body, bgg_id=1).title == "Other"


def test_error_inside_the_matching_item_is_a_request_error() -> None:
    body = '<items><item id="5"><error message="Bad thing" /></item></items>'
    with pytest.raises(BggRequestError, match="Bad thing"):
        parse_thing(body, bgg_id=5)


def test_error_directly_inside_items_is_a_request_error() -> None:
    body = '<items termsofuse="x"><error message="Bad request" /></items>'
    with pytest.raises(BggRequestError, match="Bad request"):
        parse_thing(body, bgg_id=5)


@pytest.mark.parametrize("name", ["", '<name type="alternate" value="Alt" />'])
def test_missing_primary_name_is_a_bad_response(name: str) -> None:
    body = (
        f'<items><item type="boardgame" id="9">{name}'
        '<name type="primary" value="  " /></item></items>'
    )
    with pytest.raises(BggBadResponse, match="no primary name"):
        parse_thing(body, bgg_id=9)


@pytest.mark.parametrize(
    "body",
    [
        "<!DOCTYPE html><html><head><title>Down</title></head><body>503</body></html>",
        "<!doctype HTML>\n<html lang=en><body><p>Cloudflare<br></body></html>",
        "<html><head><title>Error</title></head><body><p>Sorry</p></body></html>",
        "<html><body><br><p>unclosed</body></html>",
        '<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
    ],
)
def test_html_page_is_a_bad_response_that_says_html(body: str) -> None:
    with pytest.raises(BggBadResponse, match="HTML") as info:
        parse_thing(body.encode(), bgg_id=1)
    assert info.value.bgg_id == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not well-formed"),
        (b"<items><item", "not well-formed"),
        (b"\xff\xfe\x00<", "not well-formed"),
        (b'<?xml version="1.0" encoding="utf-8"?><items>\xff</items>', "not valid utf-8"),
        (b"<unexpected/>", "unexpected root element <unexpected>"),
        (b'<items xmlns="urn:x"><item id="1"/></items>', "unexpected root"),
        (b'<?xml version="1.0" encoding="unicode_escape"?><items/>', "unsupported encoding"),
        (b'<?xml version="1.0" encoding="rot13"?><items/>', "unsupported encoding"),
        (b'<?xml version="1.0" encoding="shift_jis"?><items/>', "unsupported encoding"),
    ],
)
def test_unreadable_answers_are_bad_responses(body: bytes, message: str) -> None:
    with pytest.raises(BggBadResponse, match=message):
        parse_thing(body, bgg_id=1)


def test_str_with_a_lone_surrogate_is_a_bad_response() -> None:
    with pytest.raises(BggBadResponse, match="not valid text"):
        parse_thing("<items>\udcff</items>", bgg_id=1)


@pytest.mark.parametrize(
    ("prefix", "codec"),
    [
        ("", "utf-8"),
        ('<?xml version="1.0" encoding="UTF-8"?>', "utf-8"),
        ('<?xml version="1.0" encoding="ISO-8859-1"?>', "latin-1"),
        ("\ufeff", "utf-8"),
        ("\ufeff", "utf-16-le"),
        ("\ufeff", "utf-16-be"),
    ],
)
def test_supported_encodings(prefix: str, codec: str) -> None:
    doc = prefix + '<items><item id="3"><name type="primary" value="Café" /></item></items>'
    assert parse_thing(doc.encode(codec), bgg_id=3).title == "Café"


def test_body_larger_than_max_bytes_is_refused_before_parsing() -> None:
    body = _thing("")
    assert parse_thing(body, bgg_id=7, max_bytes=len(body)).title == "Game"
    with pytest.raises(BggBadResponse, match="larger than"):
        parse_thing(body.encode(), bgg_id=7, max_bytes=len(body) - 1)
    # Counted in encoded bytes, not characters.
    wide = _thing("<description>" + "é" * 100 + "</description>")
    with pytest.raises(BggBadResponse, match="larger than"):
        parse_thing(wide, bgg_id=7, max_bytes=len(wide) + 50)
    with pytest.raises(BggBadResponse, match="larger than"):
        parse_thing(b"<" * 5_000_001, bgg_id=7)


# --- hostile XML --------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><items><item id='1'><name type='primary' value='&lol9;'/></item></items>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE items [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<items><item id='1'><name type='primary' value='a'/><description>&x;</description>"
    "</item></items>"
)
EXTERNAL_DTD = (
    '<?xml version="1.0"?><!DOCTYPE items SYSTEM "http://127.0.0.1:9/evil.dtd">'
    "<items><item id='1'><name type='primary' value='a'/></item></items>"
)
PLAIN_DTD = (
    '<?xml version="1.0"?><!DOCTYPE items [<!ELEMENT items ANY>]>'
    "<items><item id='1'><name type='primary' value='a'/></item></items>"
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE items [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><items/>'
)


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PLAIN_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "external-entity", "external-dtd", "plain-dtd", "parameter-entity"],
)
@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "str"])
def test_dtds_and_entities_are_refused_without_expansion(body: str, as_bytes: bool) -> None:
    # Refused on sight of the declarations, before any expansion: a parser that expanded would
    # take 10**9 steps, or (expat >= 2.4) fail with its own amplification error instead.
    with pytest.raises(BggBadResponse, match="DTD or entity declarations") as info:
        parse_thing(body.encode() if as_bytes else body, bgg_id=1)
    assert "root:" not in info.value.message


def test_undeclared_entity_is_not_well_formed() -> None:
    with pytest.raises(BggBadResponse, match="not well-formed"):
        parse_thing("<items><item id='1'>&x;</item></items>", bgg_id=1)


# --- properties ---------------------------------------------------------------------------

# Enough to find the classic failures; the whole file still runs in a few seconds.
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


def _parse_or_bgg_error(body: bytes | str, bgg_id: int) -> BggGame | None:
    try:
        game = parse_thing(body, bgg_id=bgg_id)
    except BggError:
        return None
    assert isinstance(game, BggGame)
    _assert_sane(game, bgg_id)
    return game


def _assert_sane(game: BggGame, bgg_id: int) -> None:
    assert game.bgg_id == bgg_id
    assert game.title
    assert game.title == game.title.strip()
    assert len(game.title) <= TITLE_MAX_LENGTH
    assert game.year_published != 0
    for count in (
        game.min_players,
        game.max_players,
        game.playing_time,
        game.min_age,
        game.bgg_rank,
    ):
        assert count is None or (type(count) is int and count > 0)
    assert game.year_published is None or type(game.year_published) is int
    for rating in (game.average_rating, game.bayes_average):
        assert rating is None or (type(rating) is float and 0 < rating <= 10)
    for url in (game.thumbnail_url, game.image_url):
        assert url is None or url.startswith(("https://", "http://"))
        assert url is None or (len(url) <= URL_MAX_LENGTH and "@" not in url.split("/")[2])
    for links in (game.categories, game.mechanics, game.designers, game.publishers):
        assert len(set(links)) == len(links)
        assert all(link and link == link.strip() for link in links)


@PROPERTY_SETTINGS
@given(
    body=st.one_of(st.text(), st.binary(), xmlish_text(), xmlish_text().map(str.encode)),
    bgg_id=st.integers(0, 10),
)
def test_any_input_gives_a_game_or_a_bgg_error(body: bytes | str, bgg_id: int) -> None:
    _parse_or_bgg_error(body, bgg_id)


@PROPERTY_SETTINGS
@given(
    case=st.sampled_from(ALL_SOURCES).flatmap(
        lambda source: st.tuples(mutations(source[0]), st.just(source[1]))
    )
)
def test_damaged_real_answers_give_a_game_or_a_bgg_error(case: tuple[bytes, int]) -> None:
    body, bgg_id = case
    _parse_or_bgg_error(body, bgg_id)


@PROPERTY_SETTINGS
@given(
    body=thing_documents(
        item_ids=st.one_of(st.just("4242"), almost_numbers()),
        primary_names=st.one_of(st.none(), xml_attribute_text()),
    )
)
def test_generated_thing_answers_give_a_game_or_a_bgg_error(body: str) -> None:
    _parse_or_bgg_error(body, 4242)
    _parse_or_bgg_error(body.encode("utf-8"), 4242)


@PROPERTY_SETTINGS
@given(
    body=thing_documents(
        item_ids=st.just("4242"),
        primary_names=xml_attribute_text().filter(lambda name: bool(name.strip())),
    )
)
def test_generated_answer_with_the_id_and_a_name_always_parses(body: str) -> None:
    game = parse_thing(body, bgg_id=4242)
    _assert_sane(game, 4242)
