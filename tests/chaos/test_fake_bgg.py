"""The fake BGG over real sockets: real fixtures, synthetic games, unknown and invalid ids."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import httpx
import pytest
from defusedxml import ElementTree

from chaos.fakes import RunningServer, bgg_base_url
from chaos.fakes.bgg import BggApp, BggCatalogue, split_items, synthetic_name
from chaos.fakes.bodies import Fixtures
from chaos.fakes.faults import RequestInfo

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bgg"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def thing(http: httpx.Client, server: RunningServer, **params: str | int) -> httpx.Response:
    return http.get(bgg_base_url(server.url) + "/thing", params=params)


def find(element: Element, path: str) -> Element:
    """The element at `path`, which the test needs to be there."""
    found = element.find(path)
    assert found is not None, f"no {path}"
    return found


def text_of(element: Element, path: str) -> str:
    value = find(element, path).text
    assert value is not None, f"{path} has no text"
    return value


def attribute(element: Element, path: str, name: str) -> str:
    value = find(element, path).get(name)
    assert value is not None, f"{path} has no {name}"
    return value


@pytest.mark.parametrize(
    ("bgg_id", "name"),
    [
        (28720, "thing_28720_brass_lancashire_stats.xml"),
        (223555, "thing_223555_expansion_scythe_wind_gambit_stats.xml"),
        (1001, "thing_1001_vendetta_stats_versions_marketplace_2026.xml"),
    ],
)
def test_real_fixtures_are_served_byte_for_byte(
    http: httpx.Client, bgg: RunningServer, bgg_id: int, name: str
) -> None:
    response = thing(http, bgg, id=bgg_id, stats=1)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content == fixture(name)


def test_both_base_urls_work_and_log_the_logical_path(
    http: httpx.Client, bgg: RunningServer
) -> None:
    with_prefix = http.get(f"{bgg.url}/xmlapi2/thing", params={"id": 28720, "stats": 1})
    without = http.get(f"{bgg.url}/thing", params={"id": 28720, "stats": 1})
    assert with_prefix.content == without.content
    records = bgg.app.log.records()
    assert [r.path for r in records] == ["/thing", "/thing"]
    assert [r.raw_path for r in records] == ["/xmlapi2/thing", "/thing"]
    assert records[0].query == "id=28720&stats=1"


def test_multi_item_fixture(http: httpx.Client, bgg: RunningServer) -> None:
    both = thing(http, bgg, id="31260,283", stats=1)
    assert both.content == fixture("thing_multi_31260_283_stats_versions_videos.xml")

    agricola = thing(http, bgg, id=31260, stats=1)
    root = ElementTree.fromstring(agricola.content)
    items = root.findall("item")
    assert [i.get("id") for i in items] == ["31260"]
    assert find(items[0], "name[@type='primary']").get("value") == "Agricola"
    assert len(items[0].findall("versions/item")) > 10  # nested versions kept

    mixed = thing(http, bgg, id="283,28720,99999999", stats=1)
    ids = [i.get("id") for i in ElementTree.fromstring(mixed.content).findall("item")]
    assert ids == ["283", "28720"]


def test_synthetic_game_is_well_formed_and_deterministic(
    http: httpx.Client, bgg: RunningServer
) -> None:
    first = thing(http, bgg, id=12345, stats=1)
    assert first.status_code == 200
    assert first.content == thing(http, bgg, id=12345, stats=1).content
    item = ElementTree.fromstring(first.content).find("item")
    assert item is not None
    assert item.get("type") == "boardgame"
    assert item.get("id") == "12345"
    assert find(item, "name[@type='primary']").get("value") == synthetic_name(12345)
    assert find(item, "thumbnail").text == "https://cf.geekdo-images.com/images/pic12345_t.jpg"
    for tag in ("yearpublished", "minplayers", "maxplayers", "playingtime", "minage"):
        assert int(attribute(item, tag, "value")) >= 0
    description = text_of(item, "description")
    assert "&#10;" in description  # BGG's double escaping survives one XML parse
    assert "&amp;#10;" in first.text
    kinds = {link.get("type") for link in item.findall("link")}
    assert {"boardgamecategory", "boardgamemechanic", "boardgamedesigner"} <= kinds
    assert "boardgamepublisher" in kinds
    ratings = item.find("statistics/ratings")
    assert ratings is not None
    assert ratings.find("ranks/rank[@name='boardgame']") is not None
    float(attribute(ratings, "average", "value"))


def test_synthetic_game_without_stats_has_no_statistics(
    http: httpx.Client, bgg: RunningServer
) -> None:
    item = ElementTree.fromstring(thing(http, bgg, id=777).content).find("item")
    assert item is not None
    assert item.find("statistics") is None


def test_unranked_games_say_not_ranked() -> None:
    catalogue = BggCatalogue(fixtures=Fixtures())
    values = set()
    for bgg_id in range(2, 80):
        root = ElementTree.fromstring(catalogue.thing([bgg_id], stats=True, types=None))
        rank = find(root, "item/statistics/ratings/ranks/rank")
        values.add(rank.get("value") == "Not Ranked")
    assert values == {True, False}


@pytest.mark.parametrize("bgg_id", ["2000001", "10000000", "0"])
def test_unknown_ids_give_the_real_empty_answer(
    http: httpx.Client, bgg: RunningServer, bgg_id: str
) -> None:
    response = thing(http, bgg, id=bgg_id, stats=1)
    assert response.status_code == 200
    assert response.content == fixture("thing_10000000_nonexistent_empty.xml")


@pytest.mark.parametrize("query", ["", "?id=", "?id=abc", "?id=1,,2", "?id=%20"])
def test_missing_or_invalid_ids_give_the_invalid_item_error(
    http: httpx.Client, bgg: RunningServer, query: str
) -> None:
    response = http.get(f"{bgg.url}/xmlapi2/thing{query}")
    assert response.status_code == 200
    assert response.content == fixture("thing_without_id_invalid_item_error.xml")


def test_type_filter(http: httpx.Client, bgg: RunningServer) -> None:
    empty = fixture("thing_10000000_nonexistent_empty.xml")
    assert thing(http, bgg, id=1, type="rpgitem").content == empty
    assert thing(http, bgg, id=223555, type="boardgame").content == empty
    expansion = thing(http, bgg, id=223555, type="boardgameexpansion,boardgame")
    assert find(ElementTree.fromstring(expansion.content), "item").get("id") == "223555"


def test_other_paths_and_methods(http: httpx.Client, bgg: RunningServer) -> None:
    assert http.get(f"{bgg.url}/xmlapi2/collection?username=x").status_code == 404
    assert http.post(f"{bgg.url}/xmlapi2/thing?id=1").status_code == 405
    head = http.head(f"{bgg.url}/xmlapi2/thing?id=28720")
    assert head.status_code == 200
    assert head.content == b""


def test_known_range_and_unknown_set_are_configurable() -> None:
    catalogue = BggCatalogue(fixtures=Fixtures(), known_max=100, unknown={50})
    empty = Fixtures().empty
    assert catalogue.thing([101], stats=False, types=None) == empty
    assert catalogue.thing([50], stats=False, types=None) == empty
    assert catalogue.thing([28720], stats=False, types=None) != empty  # fixtures always exist
    assert b'id="99"' in catalogue.thing([99], stats=False, types=None)


def test_cdn_url_rewrites_image_urls_everywhere() -> None:
    catalogue = BggCatalogue(fixtures=Fixtures(), cdn_base_url="http://127.0.0.1:9/")
    brass = ElementTree.fromstring(catalogue.thing([28720], stats=True, types=None))
    assert find(brass, "item/thumbnail").text == "http://127.0.0.1:9/images/pic3469216.jpg"
    synthetic = ElementTree.fromstring(catalogue.thing([5], stats=True, types=None))
    assert find(synthetic, "item/image").text == "http://127.0.0.1:9/images/pic5.jpg"
    vendetta = catalogue.thing([1001], stats=True, types=None).decode()
    assert "cf.geekdo-images.com" not in vendetta


def test_api_token_is_enforced_when_configured() -> None:
    app = BggApp(api_token="s3cret")
    anonymous = RequestInfo("GET", "/thing", {"id": "1"})
    assert app.handle(anonymous).status == 401
    authorised = RequestInfo(
        "GET", "/thing", {"id": "1"}, headers={"authorization": "Bearer s3cret"}
    )
    assert app.handle(authorised).status == 200


def test_split_items_keeps_nesting() -> None:
    text = '<items><item id="1"><versions><item id="9"/></versions></item><item id="2"/></items>'
    assert split_items(text) == [
        '<item id="1"><versions><item id="9"/></versions></item>',
        '<item id="2"/>',
    ]
