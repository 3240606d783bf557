"""`/`, `/docs` and `/redoc` work without internet: every asset comes from the service itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from system.api.docs import ASSETS_PATH, NO_IMAGE, REDOC_LOGO_URL, REDOC_SCRIPT_PATH, assets_dir
from system.app import create_app
from tests.conftest import make_settings

# src/href values of a page's tags (enough for FastAPI's two templates and our own page).
_URLS = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
# JS string literals the pages load at run time (`url: '/openapi.json'`, SwaggerUIBundle's).
_SPEC_URL = re.compile(r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """One app on SQLite: the pages touch no database, so one backend is enough."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}",
        thumbnail_dir=tmp_path / "thumbnails",
        spool_path=tmp_path / "spool.jsonl",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def _referenced(html: str) -> list[str]:
    return _URLS.findall(html) + _SPEC_URL.findall(html)


@pytest.mark.parametrize(
    ("page", "asset_names"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),  # the script from its own route
    ],
)
async def test_the_docs_pages_load_only_local_assets(
    client: httpx.AsyncClient, page: str, asset_names: set[str]
) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = _referenced(response.text)
    assert {f"{ASSETS_PATH}/{name}" for name in asset_names} <= set(urls)
    assert "/openapi.json" in urls
    assert [url for url in urls if not url.startswith("/")] == []
    # ReDoc's template asks Google for its fonts unless told not to.
    assert "fonts.googleapis.com" not in response.text


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui-bundle.js", ("text/javascript", "application/javascript")),
        ("swagger-ui.css", ("text/css",)),
        ("favicon.png", ("image/png",)),
    ],
)
async def test_assets_are_served_from_the_installed_package(
    client: httpx.AsyncClient, name: str, content_type: tuple[str, ...]
) -> None:
    response = await client.get(f"{ASSETS_PATH}/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in content_type
    assert response.content == (assets_dir() / name).read_bytes()


async def test_redoc_is_served_without_the_logo_it_would_fetch_from_its_cdn(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(REDOC_SCRIPT_PATH)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    original = (assets_dir() / "redoc.standalone.js").read_bytes()
    # When a new fastapi-offline moves the logo, this says so before a browser test does.
    assert REDOC_LOGO_URL in original
    assert b"cdn.redoc.ly" not in response.content
    assert len(response.content) == len(original) - len(REDOC_LOGO_URL) + len(NO_IMAGE)


async def test_the_home_page_links_to_every_place_to_start(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    links = _URLS.findall(response.text)
    for path in ("/docs", "/redoc", "/health", "/health/ready", "/api/public/games", "/metrics"):
        assert path in links
        assert (await client.get(path)).status_code == 200, path
    assert [url for url in links if not url.startswith("/")] == []
    assert "README.md" in response.text


async def test_an_unknown_asset_is_a_404_in_the_shared_error_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{ASSETS_PATH}/nope.js")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_the_pages_stay_out_of_the_schema_and_the_alert_window(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    window = app.state.services.alerter.window
    pages = ("/", "/docs", "/redoc", f"{ASSETS_PATH}/swagger-ui.css", REDOC_SCRIPT_PATH)
    for path in pages:
        assert (await client.get(path)).status_code == 200

    # People reading the docs do not dilute the API's error rate.
    assert window.totals() == (0, 0)
    await client.get("/api/public/games")
    assert window.totals() == (1, 0)
    schema_paths = app.openapi()["paths"]
    assert not {"/", "/docs", "/redoc"} & set(schema_paths)
    # Counted under their route templates, the assets under one label.
    metrics = (await client.get("/metrics")).text
    assert 'route="/docs"' in metrics
    assert f'route="{ASSETS_PATH}"' in metrics
