"""The load-run documentation (docs/load.md) stays true to the options."""

from __future__ import annotations

import re

from loadtests import settings
from tests.conftest import REPO_ROOT


def load_docs() -> str:
    return (REPO_ROOT / "docs" / "load.md").read_text()


def test_every_option_is_documented_with_its_variable_and_default() -> None:
    docs = load_docs()
    for option in settings.OPTIONS:
        rows = [line for line in docs.splitlines() if line.startswith(f"| `{option.flag}` |")]
        assert rows, f"{option.flag} missing from the options table"
        cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
        assert cells[1] == f"`{option.env}`", option.flag
        if option.default and option.dest != "search_terms":
            assert cells[2].strip("`") == option.default, option.flag


def test_every_documented_option_exists() -> None:
    flags = set(re.findall(r"^\| `(--[a-z0-9-]+)` \| `LOADTEST_", load_docs(), flags=re.MULTILINE))
    assert flags == {option.flag for option in settings.OPTIONS}
