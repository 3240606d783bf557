"""An import the open BGG breaker rejects skips FastAPI's routing and dependencies
(`ImportWhileOpen`, issue 14 item 4), and is still the route's own answer: status, headers,
body, metrics, the alert window; anything else goes the ordinary way (401, 422)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from system.api.admin import ImportWhileOpen
from system.api.auth import refusal, require_admin
from system.app import create_app
from system.config import Settings
from system.tokens import AdminTokens
from tests.conftest import ADMIN_TOKEN, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IMPORT = "/api/admin/games/import/13"
ROUTE_LABEL = 'method="POST",route="/api/admin/games/import/{bgg_id}",status="503"'


@asynccontextmanager
async def _open_breaker_app(settings: Settings, *, fast: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(**{**settings.model_dump(), "admin_tokens": ADMIN_TOKEN}))
    if not fast:
        # Starlette types Middleware.cls with a ParamSpec bound to nothing: mypy finds no class
        # that could be it.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not ImportWhileOpen]  # type: ignore[comparison-overlap]
    async with app.router.lifespan_context(app):
        await app.state.services.bgg_breaker.reset("open")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def _dependency_calls(app: FastAPI) -> list[str]:
    calls: list[str] = []

    async def recording() -> None:
        calls.append("require_admin")

    # An override stands in for the dependency wherever FastAPI resolves it: a request that
    # reaches the route's dependencies is seen here (and authorised, to reach the breaker).
    app.dependency_overrides[require_admin] = recording
    return calls


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_fast_rejection_is_the_routes_answer(settings: Settings, backend: str) -> None:
    answers = {}
    for fast in (True, False):
        async with _open_breaker_app(settings, fast=fast) as client:
            calls = _dependency_calls(client.app)  # type: ignore[attr-defined]
            answer = await client.post(IMPORT, headers=AUTH)
            metrics = (await client.get("/metrics")).text
            assert calls == ([] if fast else ["require_admin"])
            answers[fast] = answer
            assert _metric(metrics, "http_requests_total", ROUTE_LABEL) == 1
            assert _metric(metrics, "circuit_breaker_rejections_total", 'breaker="BGG API"') == 1
            assert _metric(metrics, "bgg_fetches_total", 'outcome="BggUnavailable"') == 1
            window = client.app.state.services.alerter.window  # type: ignore[attr-defined]
            # The designed 503 is no error for the alert (the /metrics scrape is not judged).
            assert window.totals() == (1, 0)
    fast_answer, route_answer = answers[True], answers[False]
    assert fast_answer.status_code == route_answer.status_code == 503
    assert fast_answer.headers == route_answer.headers
    assert fast_answer.json() == route_answer.json()
    assert fast_answer.json()["error"]["code"] == "bgg_unavailable"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        (IMPORT, {}, 401),
        (IMPORT, {"Authorization": "Bearer wrong"}, 401),
        (IMPORT, {"Authorization": f"Basic {ADMIN_TOKEN}"}, 401),
        ("/api/admin/games/import/0", AUTH, 422),
        ("/api/admin/games/import/99999999999", AUTH, 422),
        ("/api/admin/games/import/x", AUTH, 422),
    ],
)
async def test_what_the_fast_path_does_not_take_goes_the_ordinary_way(
    settings: Settings, backend: str, path: str, headers: dict[str, str], status: int
) -> None:
    async with _open_breaker_app(settings, fast=True) as client:
        answer = await client.post(path, headers=headers)
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("authorization", "authorised"),
    [
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (f"Bearer {ADMIN_TOKEN}", True),
        (f"bearer {ADMIN_TOKEN}", True),
        (f"BEARER  {ADMIN_TOKEN} ", True),
        (f"Bearer {ADMIN_TOKEN}x", False),
        (f"Basic {ADMIN_TOKEN}", False),
        (ADMIN_TOKEN, False),
    ],
)
async def test_the_fast_path_and_require_admin_judge_alike(
    settings: Settings, backend: str, authorization: str | None, authorised: bool
) -> None:
    """One rule (`refusal`): an import the open breaker rejects is a 503 exactly when the
    header authorises, and otherwise the dependency's 401 with the reason it gives."""
    reason = refusal(AdminTokens([ADMIN_TOKEN]), authorization)
    assert (reason is None) is authorised
    headers = {} if authorization is None else {"Authorization": authorization}
    async with _open_breaker_app(settings, fast=True) as client:
        answer = await client.post(IMPORT, headers=headers)
    if authorised:
        assert answer.status_code == 503, answer.text
    else:
        assert answer.status_code == 401
        assert answer.json()["error"]["message"] == reason


def test_refusal_names_why() -> None:
    assert refusal(AdminTokens([]), f"Bearer {ADMIN_TOKEN}") == (
        "Admin access is disabled: no ADMIN_TOKENS configured"
    )
    tokens = AdminTokens([ADMIN_TOKEN])
    assert refusal(tokens, None) == "Missing bearer token"
    assert refusal(tokens, f"Basic {ADMIN_TOKEN}") == "Missing bearer token"
    assert refusal(tokens, "Bearer wrong") == "Invalid bearer token"
    assert refusal(tokens, f"Bearer {ADMIN_TOKEN}") is None
