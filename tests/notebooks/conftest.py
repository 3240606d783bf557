"""The notebook tests need the notebooks' own dependencies (`pip install -e .[notebooks]`).

Without them only `test_dependencies.py` is collected, and it says what is missing (a skip,
or a failure when TEST_REQUIRE_SERVICES=1, as in CI). With them, the fixtures of `support.py`.
"""

from __future__ import annotations

import importlib.util

NEEDED = (
    "pandas",
    "matplotlib",
    "nbclient",
    "nbconvert",
    "nbformat",
    "jupytext",
    "IPython",
    "psycopg",
    "hypothesis",
)
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]

if MISSING:
    collect_ignore_glob = ["test_[!d]*.py", "s*.py"]
else:
    import pytest

    from tests.notebooks.support import (
        WANTS_PIPELINE,
        generated,
        pipeline,
        postgres,
        sqlite_db,
        sqlite_template,
    )

    __all__ = ["generated", "pipeline", "postgres", "sqlite_db", "sqlite_template"]

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        """Tests on the generated data go last among the notebook tests, so the pipeline that
        makes it runs while the others do; and it starts only if such a test was collected."""
        here = [i for i in items if "tests/notebooks/" in i.nodeid]
        if not here:
            return
        late = [i for i in here if "generated" in getattr(i, "fixturenames", ())]
        config.stash[WANTS_PIPELINE] = bool(late)
        if not late:
            return
        first = items.index(here[0])
        rest = [i for i in items if i not in late]
        ours = [n for n, i in enumerate(rest) if "tests/notebooks/" in i.nodeid]
        position = ours[-1] + 1 if ours else first
        items[:] = rest[:position] + late + rest[position:]
