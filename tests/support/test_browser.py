"""The page checker itself: it sees what a page shows and every request that leaves loopback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import is_local, render

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow


def test_a_page_that_reaches_the_internet_is_caught(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>Run</title></head><body><h1>Verdict: passed</h1>"
        '<img src="https://cdn.example.com/logo.png">'
        "<script>document.body.append('drawn by a script')</script></body></html>"
    )

    rendered = render(browser, page, screenshot=tmp_path / "page.png")

    assert rendered.title == "Run"
    assert rendered.missing_text("Verdict: passed", "drawn by a script") == []
    assert rendered.offsite == ["https://cdn.example.com/logo.png"]
    assert (tmp_path / "page.png").stat().st_size > 0


def test_a_self_contained_page_makes_no_offsite_request(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text('<html><body><svg width="10" height="10"><rect/></svg>ok</body></html>')

    rendered = render(browser, page)

    assert rendered.offsite == []
    assert rendered.missing_text("ok") == []
    assert rendered.missing_text("absent") == ["absent"]


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/docs", True),
        ("http://localhost/x", True),
        ("http://[::1]:9/x", True),
        ("file:///tmp/report.html", True),
        ("data:image/png;base64,AAAA", True),
        ("https://cdn.jsdelivr.net/npm/swagger-ui-dist", False),
        ("http://127.0.0.1.example.com/", False),
    ],
)
def test_loopback_is_told_from_the_internet(url: str, local: bool) -> None:
    assert is_local(url) is local
