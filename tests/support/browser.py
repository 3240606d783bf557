"""Opening the project's HTML pages in a real headless Chromium, as a person would see them.

One way for every page test (chaos report, load report, notebooks, `/docs`): `render(browser,
target)` loads a file or a loopback URL, lets its scripts run, and returns the visible text,
every request the page made, the requests that tried to leave loopback (aborted, so nothing
leaks), and the page's JavaScript errors. The browser is Debian's `chromium` (installed by
`.ci/run`), driven by Playwright; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.services import missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

#: Where Debian puts it; CHROMIUM overrides.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_local(url: str) -> bool:
    """Whether a request stays on this machine (a file, inline data, or loopback)."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or (parts.hostname or "") in LOOPBACK_HOSTS


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when the machine has none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Rendered:
    """What a page showed and did once loaded."""

    url: str
    title: str
    text: str
    requests: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def missing_text(self, *expected: str) -> list[str]:
        """The expected strings that are not visible on the page."""
        return [item for item in expected if item not in self.text]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test.

    Not one for the session: Playwright's sync API keeps its event loop running in the main
    thread while it is open, and every asyncio test after it would then fail with "cannot be
    called from a running event loop". Starting one takes about a second.
    """
    binary = chromium_path()
    if binary is None:
        missing("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def render(
    browser: Browser,
    target: str | Path,
    *,
    wait_for: str | None = None,
    screenshot: Path | None = None,
    timeout_ms: float = 30_000,
) -> Rendered:
    """Load a file or URL, abort (and record) every request that would leave loopback.

    `wait_for` is a CSS selector to wait for after the load, for pages that draw with
    scripts (Swagger UI); `screenshot` saves a full-page PNG for a person to look at.
    """
    url = target.resolve().as_uri() if isinstance(target, Path) else target
    result = Rendered(url=url, title="", text="")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_ms)

        def guard(route: Route) -> None:
            request_url = route.request.url
            result.requests.append(request_url)
            if is_local(request_url):
                route.continue_()
            else:
                result.offsite.append(request_url)
                route.abort()

        page.route("**/*", guard)
        page.on("pageerror", lambda error: result.errors.append(str(error)))
        page.on(
            "console",
            lambda message: result.errors.append(message.text) if message.type == "error" else None,
        )
        page.goto(url, wait_until="load")
        if wait_for is not None:
            page.wait_for_selector(wait_for)
        result.title = page.title()
        result.text = page.inner_text("body")
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return result
