"""Bad input is a 422 naming the field, on both backends: never a 500.

Admin listing times at the edges of the calendar, forged cursors, and BGG data that does not
fit the catalogue's columns (stored cut or dropped, see the parser's docstring).
"""

from __future__ import annotations

import base64

import httpx
import pytest
from fastapi import FastAPI

from chaos.fakes import FaultRule
from system.bgg.models import TITLE_MAX_LENGTH, URL_MAX_LENGTH
from system.db.models import BoardGame
from tests.conftest import ServiceUnderTest
from tests.fakes import Upstreams

FAILURES = "/api/admin/monitoring/background-failures"


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),
        ({"task_type": "thumbnail\x00download"}, "task_type"),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|99999999999999999999")}, "cursor"),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|-99999999999")}, "cursor"),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|0")}, "cursor"),
        ({"cursor": _cursor("0001-01-01T00:00:00+01:00|1")}, "cursor"),
        ({"cursor": _cursor("9999-12-31T23:59:59-01:00|1")}, "cursor"),
    ],
    ids=[
        "since-year-0",
        "until-year-10000",
        "task-type-nul",
        "cursor-huge-id",
        "cursor-negative-id",
        "cursor-id-0",
        "cursor-year-0",
        "cursor-year-10000",
    ],
)
async def test_admin_listing_edges_are_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await client.get(FAILURES, params=params, headers=admin_headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert [f["field"] for f in error["fields"]] == [field]
    assert field in error["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00Z"},
        {"until": "9999-12-31T23:59:59.999999Z"},
        {"since": "0001-01-01T00:00:00", "until": "9999-12-31T23:59:59"},
        {"cursor": _cursor("0001-01-01T00:00:00+00:00|1")},
        {"cursor": _cursor(f"9999-12-31T23:59:59+00:00|{2**31 - 1}")},
    ],
)
async def test_calendar_edges_that_are_valid_in_utc_are_answered(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get(FAILURES, params=params, headers=admin_headers)
    assert response.status_code == 200, response.text


async def test_nul_in_the_search_matches_nothing_it_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with app.state.database.session() as session:
        session.add(BoardGame(bgg_id=1, title="Agricola"))
    response = await client.get("/api/public/games", params={"q": "Z\x00"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "q"


def _thing(bgg_id: int, *, title: str, thumbnail: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><items termsofuse="x">'
        f'<item type="boardgame" id="{bgg_id}"><thumbnail>{thumbnail}</thumbnail>'
        f"<image>{thumbnail}</image>"
        f'<name type="primary" sortindex="1" value="{title}" /></item></items>'
    )


async def test_bgg_values_over_the_column_sizes_are_cut_or_dropped(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    """On PostgreSQL these were a 500 (value too long for type character varying)."""
    cdn = upstreams.cdn.url
    long_url = f"{cdn}/images/{'p' * URL_MAX_LENGTH}.jpg"
    body = _thing(424242, title="Brass " * 100, thumbnail=long_url)
    upstreams.bgg_app.engine.set_rules([FaultRule(path="/thing", text=body)])
    response = await service.import_game(424242)
    assert response.status_code == 201, response.text
    game = response.json()
    assert len(game["title"]) == TITLE_MAX_LENGTH and game["title"].endswith("…")
    assert (game["thumbnail_url"], game["image_url"]) == (None, None)
    stored = (await service.client.get(f"/api/public/games/{game['id']}")).json()
    assert stored["title"] == game["title"]


async def test_thumbnail_url_with_credentials_is_never_stored_shown_or_fetched(
    service: ServiceUnderTest, upstreams: Upstreams
) -> None:
    cdn = upstreams.cdn.url.replace("http://", "http://user:s3cret@")
    body = _thing(424243, title="Secretive", thumbnail=f"{cdn}/images/pic1_t.jpg")
    upstreams.bgg_app.engine.set_rules([FaultRule(path="/thing", text=body)])
    response = await service.import_game(424243)
    assert response.status_code == 201, response.text
    assert "s3cret" not in response.text
    assert response.json()["thumbnail_url"] is None
    await service.services.settle()
    assert upstreams.image_requests() == 0


async def test_credentials_stored_before_are_not_shown(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with app.state.database.session() as session:
        session.add(
            BoardGame(
                bgg_id=5,
                title="Old row",
                thumbnail_url="https://user:s3cret@cf.geekdo-images.com/a.jpg",
                image_url="https://cf.geekdo-images.com/b.jpg",
            )
        )
    page = await client.get("/api/public/games")
    assert "s3cret" not in page.text
    (game,) = page.json()["items"]
    assert game["thumbnail_url"] is None
    assert game["image_url"] == "https://cf.geekdo-images.com/b.jpg"
