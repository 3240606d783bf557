"""README stays true to the code: every setting and every nox session is documented."""

from __future__ import annotations

import re

from system.config import Settings
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from README"
    assert documented - expected == set(), "README documents settings that do not exist"


def test_every_nox_session_is_in_readme() -> None:
    noxfile = (REPO_ROOT / "noxfile.py").read_text()
    # A session is named by the decorator's name= when it has one, else by its function.
    sessions = [
        named or function
        for named, function in re.findall(
            r'^@nox\.session\((?:name="([\w-]+)")?.*\)\ndef (\w+)\(', noxfile, flags=re.MULTILINE
        )
    ]
    assert {"tests", "lint", "chaos"} <= set(sessions)
    for name in sessions:
        assert f"nox -s {name}" in README, name
