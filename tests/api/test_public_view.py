"""What a game's JSON shows: whether its thumbnail is stored, never where on the server's disk
(issue 12, item 7)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from system.db.models import BoardGame


async def test_a_game_says_it_has_a_thumbnail_without_the_server_path(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    stored = tmp_path / "thumbnails" / "secret-layout" / "7.png"
    async with app.state.database.session() as session:
        with_file = BoardGame(bgg_id=7, title="With", thumbnail_path=str(stored))
        without = BoardGame(bgg_id=8, title="Without")
        session.add_all([with_file, without])
        await session.flush()
        ids = (with_file.id, without.id)
    answers = [await client.get(f"/api/public/games/{game_id}") for game_id in ids]
    listing = await client.get("/api/public/games")
    assert [answer.json()["has_thumbnail"] for answer in answers] == [True, False]
    assert [game["has_thumbnail"] for game in listing.json()["items"]] == [True, False]
    for response in (*answers, listing):
        assert response.status_code == 200
        assert "thumbnail_path" not in response.text
        assert "secret-layout" not in response.text and str(tmp_path) not in response.text


async def test_the_published_schema_has_no_server_path(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    game = schemas.get("Game-Output", schemas.get("Game"))
    assert "has_thumbnail" in game["properties"]
    assert "thumbnail_path" not in game["properties"]
