"""What the API answers for each BGG client error: its HTTP status and public `code`.

Clients, the load runner and the notebooks match on these codes, so they are pinned here by
hand, one row per error class, independently of how `system/api/errors.py` computes them.
Every `BggError` subclass the service defines must have a row, here and in the API's own
table (`BGG_ERRORS`): a new error class cannot reach clients with a code nobody chose.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

import system
from system.api.errors import BGG_ERRORS, bgg_answer
from system.app import create_app
from system.bgg.errors import (
    BggAuthError,
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggRequestError,
    BggTimeout,
    BggTransientError,
    BggUnavailable,
    GameNotFound,
)
from system.bgg.parse_process import ParseProcessLost
from tests.conftest import make_settings

#: The public contract: error class -> (HTTP status, `code`), as the API answered on 2026-12-06.
PINNED: dict[type[BggError], tuple[int, str]] = {
    BggError: (502, "bgg_error"),
    GameNotFound: (404, "game_not_found"),
    BggRequestError: (422, "bgg_request_error"),
    BggTransientError: (502, "bgg_transient_error"),
    BggTimeout: (504, "bgg_timeout"),
    BggRateLimited: (502, "bgg_rate_limited"),
    BggAuthError: (502, "bgg_auth_error"),
    BggBadResponse: (502, "bgg_bad_response"),
    BggUnavailable: (503, "bgg_unavailable"),
    ParseProcessLost: (503, "parse_process_lost"),
}


def _service_error_classes() -> set[type[BggError]]:
    """Every `BggError` subclass defined anywhere in `system` (each module imported first)."""
    for module in pkgutil.walk_packages(system.__path__, "system."):
        # Alembic's scripts run a migration when imported; they define no errors.
        if not module.name.startswith("system.db.migrations."):
            importlib.import_module(module.name)
    found: set[type[BggError]] = set()
    pending = [BggError]
    while pending:
        cls = pending.pop()
        # Only the service's own: a test module may subclass BggError for its own purposes.
        if cls.__module__.split(".")[0] == "system":
            found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def _instance(cls: type[BggError]) -> BggError:
    if issubclass(cls, BggUnavailable):
        return cls("BGG breaker open", breaker="BGG API", state="open", retry_after=5.0)
    return cls(f"a {cls.__name__}", bgg_id=7)


def _raising(exc: BggError) -> Callable[[], Awaitable[None]]:
    async def route() -> None:
        raise exc

    return route


def _app(tmp_path: Path) -> FastAPI:
    app = create_app(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"))
    for cls in PINNED:
        app.add_api_route(f"/raise/{cls.__name__}", _raising(_instance(cls)))
    return app


async def test_each_bgg_error_is_answered_with_its_pinned_status_and_code(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path)
    answered = {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for cls in PINNED:
            response = await client.get(f"/raise/{cls.__name__}")
            error = response.json()["error"]
            assert error["status"] == response.status_code
            answered[cls] = (response.status_code, error["code"])
    assert answered == PINNED


def test_every_bgg_error_class_of_the_service_is_pinned() -> None:
    assert _service_error_classes() == set(PINNED)


def test_every_bgg_error_class_of_the_service_is_in_the_apis_table() -> None:
    missing = {cls.__name__ for cls in _service_error_classes() - set(BGG_ERRORS)}
    assert not missing, f"add these to system.api.errors.BGG_ERRORS: {sorted(missing)}"


def test_the_apis_table_holds_the_pinned_answers() -> None:
    assert dict(BGG_ERRORS) == PINNED


def test_an_error_class_outside_the_table_answers_as_its_nearest_listed_parent() -> None:
    class SlowerTimeout(BggTimeout):
        pass

    assert bgg_answer(SlowerTimeout("slow", bgg_id=1)) == (504, "bgg_timeout")
