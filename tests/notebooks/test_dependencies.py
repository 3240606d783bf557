"""The notebook tests run only where the notebooks' dependencies are installed."""

from __future__ import annotations

from tests.notebooks.conftest import MISSING
from tests.services import missing


def test_the_notebook_dependencies_are_installed() -> None:
    if MISSING:
        missing(
            f"{', '.join(MISSING)} not installed: the notebook tests need "
            "`pip install -e .[notebooks]` (nox -s tests must install the notebooks extra)"
        )
