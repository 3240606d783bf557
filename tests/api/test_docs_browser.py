"""`/docs` and `/redoc` of the real service, opened in headless Chromium with the internet cut
off (every request that leaves loopback is aborted and recorded): both draw the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chaos.service import ServiceProcess
from tests.conftest import ADMIN_TOKEN
from tests.services import serve
from tests.support.browser import render

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

#: Where the screenshots land for a person to look at (outside the test's tmp_path, so they
#: survive the run; overwritten each time).
SCREENSHOTS = Path("/tmp")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One `python -m system serve` for the module's pages."""
    folder = tmp_path_factory.mktemp("docs-service")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'db.sqlite'}",
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "ENVIRONMENT": "test",
        "THUMBNAIL_DIR": str(folder / "thumbnails"),
        "SPOOL_PATH": str(folder / "spool.jsonl"),
    }
    with serve(env, folder, name="docs") as process:
        yield process


def test_swagger_ui_draws_every_operation_offline(
    browser: Browser, service: ServiceProcess
) -> None:
    rendered = render(
        browser,
        f"{service.url}/docs",
        wait_for=".opblock",
        screenshot=SCREENSHOTS / "bgg-reliability-docs.png",
    )

    assert rendered.offsite == []
    assert rendered.errors == []
    assert rendered.title == "bgg-reliability - Swagger UI"
    assert rendered.missing_text("/api/public/games", "/api/admin/games/import", "Authorize") == []


def test_redoc_draws_the_reference_offline(browser: Browser, service: ServiceProcess) -> None:
    rendered = render(
        browser,
        f"{service.url}/redoc",
        wait_for="h2",
        screenshot=SCREENSHOTS / "bgg-reliability-redoc.png",
    )

    assert rendered.offsite == []
    assert rendered.errors == []
    assert rendered.missing_text("List and search the catalogue.") == []


def test_the_home_page_is_self_contained(browser: Browser, service: ServiceProcess) -> None:
    rendered = render(
        browser, f"{service.url}/", screenshot=SCREENSHOTS / "bgg-reliability-home.png"
    )

    assert rendered.offsite == []
    assert rendered.errors == []
    assert rendered.missing_text("/docs", "/redoc", "/health/ready", "/api/public/games") == []
