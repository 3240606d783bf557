"""Admin auth: bearer tokens, hashed tokens, no tokens configured, constant-time compare."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from fastapi import FastAPI

from system.app import create_app
from system.db.models import BackgroundTaskFailure, BoardGame
from tests.conftest import ADMIN_TOKEN, make_settings


def _transport(app: FastAPI) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ],
    ids=["missing", "wrong", "basic-scheme", "no-scheme", "prefix-of-real"],
)
async def test_missing_or_wrong_token_is_401_bearer(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.delete("/api/admin/games/1", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


async def test_auth_comes_before_validation(client: httpx.AsyncClient) -> None:
    # An unauthenticated caller learns nothing about the route's parameters.
    assert (await client.delete("/api/admin/games/abc")).status_code == 401


async def test_right_token_deletes_and_keeps_failure_history(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    async with app.state.database.session() as session:
        game = BoardGame(bgg_id=13, title="Catan")
        session.add(game)
        await session.flush()
        failure = BackgroundTaskFailure(
            task_type="thumbnail_download", game_id=game.id, error_message="x"
        )
        session.add(failure)
        await session.flush()
        game_id, failure_id = game.id, failure.id
    response = await client.delete(f"/api/admin/games/{game_id}", headers=admin_headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/public/games/{game_id}")).status_code == 404
    response = await client.delete(f"/api/admin/games/{game_id}", headers=admin_headers)
    assert response.status_code == 404
    async with app.state.database.session() as session:
        kept = await session.get(BackgroundTaskFailure, failure_id)
        assert kept is not None and kept.game_id is None


async def test_hashed_token(database_url: str) -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()
    app = create_app(
        make_settings(database_url=database_url, admin_tokens=f"other,sha256:{digest}")
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=_transport(app), base_url="http://t") as client,
    ):
        ok = await client.delete("/api/admin/games/1", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 404  # authorised; the game just does not exist
        other = await client.delete("/api/admin/games/1", headers={"Authorization": "Bearer other"})
        assert other.status_code == 404
        # The hash itself is not a token.
        leaked = await client.delete(
            "/api/admin/games/1", headers={"Authorization": f"Bearer sha256:{digest}"}
        )
        assert leaked.status_code == 401


async def test_no_tokens_configured_refuses_everyone(database_url: str) -> None:
    app = create_app(make_settings(database_url=database_url, admin_tokens=""))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=_transport(app), base_url="http://t") as client,
    ):
        for token in ["", "test-admin-token", "admin", "None"]:
            response = await client.delete(
                "/api/admin/games/1", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
            assert "no ADMIN_TOKENS" in response.json()["error"]["message"]


@pytest.mark.parametrize("entry", ["sha256:abc", "sha256:" + "zz" * 32])
def test_malformed_hashed_token_is_a_settings_error(entry: str) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        make_settings(admin_tokens=entry)
