"""The real collection fixture's games, as the fake BGG answers them for the demo."""

from __future__ import annotations

from chaos.fakes.bgg import FIXTURE_IDS, BggCatalogue
from chaos.fakes.bodies import Fixtures
from chaos.fakes.collection import COLLECTION_FIXTURE, collection_items
from system.bgg.parser import parse_thing

CDN = "http://127.0.0.1:9"


def _catalogue(*, collection_games: bool) -> BggCatalogue:
    return BggCatalogue(fixtures=Fixtures(), cdn_base_url=CDN, collection_games=collection_games)


def test_every_collection_game_imports_with_its_real_values() -> None:
    items = collection_items(Fixtures().read(COLLECTION_FIXTURE))

    assert len(items) == 40
    catalogue = _catalogue(collection_games=True)
    catan = parse_thing(catalogue.thing([13], stats=True, types=None), bgg_id=13, feed_pause=0)
    assert (catan.title, catan.year_published, catan.min_players, catan.max_players) == (
        "Catan", 1995, 3, 4,
    )  # fmt: skip
    assert (catan.playing_time, catan.bgg_rank, catan.average_rating) == (120, 269, 7.23913)
    # The image URLs point at the fake CDN, so a demo never reaches the real one.
    assert catan.thumbnail_url == f"{CDN}/images/pic2419375_t.jpg"
    for bgg_id in items:
        game = parse_thing(catalogue.thing([bgg_id], stats=True, types=None), bgg_id=bgg_id)
        assert game.thumbnail_url is not None and game.thumbnail_url.startswith(CDN)


def test_a_translated_name_keeps_the_original_as_the_primary_one() -> None:
    body = _catalogue(collection_games=True).thing([171623], stats=False, types=None)

    game = parse_thing(body, bgg_id=171623, feed_pause=0)
    assert game.title == "The Voyages of Marco Polo"
    assert b'type="alternate" sortindex="1" value="Auf den Spuren von Marco Polo"' in body


def test_the_collection_is_answered_only_when_asked_for() -> None:
    synthetic = parse_thing(
        _catalogue(collection_games=False).thing([13], stats=True, types=None), bgg_id=13
    )

    # The scenarios draw ids at random and expect synthetic games there.
    assert synthetic.title != "Catan"
    assert set(_catalogue(collection_games=False).real_ids) == FIXTURE_IDS
    real = _catalogue(collection_games=True).real_ids
    assert len(real) == 45 and set(real) >= FIXTURE_IDS
