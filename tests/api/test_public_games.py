"""The public catalogue: paging, search, sort, 404 and 422 in the shared error shape."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from system.db.models import BoardGame


async def _seed(app: FastAPI, *games: BoardGame) -> list[int]:
    async with app.state.database.session() as session:
        session.add_all(games)
        await session.flush()
        return [g.id for g in games]


def _game(bgg_id: int, title: str, year: int | None = None, rank: int | None = None) -> BoardGame:
    return BoardGame(bgg_id=bgg_id, title=title, year_published=year, bgg_rank=rank)


async def test_list_pages_searches_and_sorts(app: FastAPI, client: httpx.AsyncClient) -> None:
    await _seed(
        app,
        _game(1, "Brass: Lancashire", 2007, 20),
        _game(2, "Brass: Birmingham", 2018, 1),
        _game(3, "Agricola", 2007, None),
        _game(4, "100%_Pure", 2020, 5),
    )
    page = (await client.get("/api/public/games", params={"limit": 2})).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0
    assert [g["title"] for g in page["items"]] == ["100%_Pure", "Agricola"]

    page = (await client.get("/api/public/games", params={"q": "brass", "sort": "-year"})).json()
    assert [g["title"] for g in page["items"]] == ["Brass: Birmingham", "Brass: Lancashire"]
    assert page["total"] == 2

    # LIKE wildcards in the search are literal characters.
    page = (await client.get("/api/public/games", params={"q": "%_"})).json()
    assert [g["title"] for g in page["items"]] == ["100%_Pure"]

    page = (await client.get("/api/public/games", params={"sort": "rank"})).json()
    assert [g["bgg_id"] for g in page["items"]] == [2, 4, 1, 3]  # unranked last

    page = (await client.get("/api/public/games", params={"offset": 3})).json()
    assert len(page["items"]) == 1


async def test_detail_and_timestamps(app: FastAPI, client: httpx.AsyncClient) -> None:
    (game_id,) = await _seed(app, _game(28720, "Brass: Lancashire", 2007, 20))
    body = (await client.get(f"/api/public/games/{game_id}")).json()
    assert body["bgg_id"] == 28720 and body["categories"] == []
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


async def test_unknown_game_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/public/games/999")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "code": "not_found", "message": "Game 999 not found"}
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/public/games/abc", "game_id"),
        ("/api/public/games/0", "game_id"),
        ("/api/public/games/99999999999", "game_id"),
        ("/api/public/games?limit=0", "limit"),
        ("/api/public/games?limit=101", "limit"),
        ("/api/public/games?offset=-1", "offset"),
        ("/api/public/games?limit=ten", "limit"),
        ("/api/public/games?sort=price", "sort"),
        # PostgreSQL cannot compare text holding NUL (a 500); SQLite's LIKE stopped at it.
        ("/api/public/games?q=%00", "q"),
        ("/api/public/games?q=Brass%00", "q"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["fields"]] == [field]
    assert field in error["message"]


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
