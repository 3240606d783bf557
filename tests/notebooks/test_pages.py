"""The three notebook reports as a person opens them: in headless Chromium, from the one
small generated run (`generated`), read like reports: the verdict first, every section's
heading, no code, clean tables, nothing fetched from outside the machine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from notebooks.execute import NOTEBOOKS, SOURCE_DIR
from tests.notebooks.support import Generated
from tests.support.browser import render

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

#: What each page shows before anything else: its verdict (or headline) table.
FIRST = {
    "reliability_report": ("Verdict", "background task success"),
    "failure_analysis": ("Verdict", "background task success"),
    "sentry_analysis": ("Overview", "first event"),
}


def headings(name: str) -> list[str]:
    """The `##` section headings of a notebook's markdown cells."""
    text = (SOURCE_DIR / f"{name}.py").read_text("utf-8")
    return re.findall(r"^# ## (.+)$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_report_reads_as_a_report(
    name: str, generated: Generated, browser: Browser, tmp_path: Path
) -> None:
    assert generated.result.returncode == 0, generated.result.stderr[-2000:]
    page = generated.output / f"{name}.html"

    shown = render(browser, page, screenshot=tmp_path / f"{name}.png")

    assert shown.offsite == []
    assert shown.errors == []
    sections = headings(name)
    assert len(sections) >= 5
    assert shown.missing_text(*sections) == []
    first_heading, first_table_text = FIRST[name]
    later = [shown.text.index(h) for h in sections if h != first_heading]
    assert shown.text.index(first_table_text) < min(later), "the verdict is not first"
    # No code: neither its source nor the `In [n]:` prompts.
    assert "import " not in shown.text
    assert "show.show(" not in shown.text
    assert not re.search(r"In \[\d*\]:", shown.text)
    # Clean tables: no index column, one way to say "none".
    html = page.read_text("utf-8")
    assert not re.search(r"<tbody>\s*<tr[^>]*>\s*<th", html), "a table shows its index"
    assert not re.search(r"(^|\t)(NaN|None|NaT|<NA>|n/a)(\t|$)", shown.text, flags=re.MULTILINE)
    # The notebook itself keeps its code.
    assert "import " in (generated.output / f"{name}.ipynb").read_text("utf-8")


def test_the_drill_explains_its_fail(generated: Generated, browser: Browser) -> None:
    shown = render(browser, generated.output / "reliability_report.html")
    verdict = shown.text[: shown.text.index("Where each number comes from")]
    row = next(line for line in verdict.splitlines() if line.startswith("background task"))
    assert "FAIL" in row
    assert "outage drill" in row  # the FAIL is explained in its own row
    assert "This is an outage drill." in verdict
