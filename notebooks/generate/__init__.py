"""A data set made by driving the real service: `generate(folder, size)`.

The folder receives `bgg.db` (the service's SQLite database), `sentry.jsonl` (its Sentry
export), `events.jsonl` (faults, breaker transitions, alerts, in the chaos harness's layout),
`tests.json` (the test count), `logs/` (the service's output) and `generated.json` (what was
made, and how long it took). See `notebooks.generate.scenario` for the story it plays.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.service import REPO_ROOT
from notebooks.generate.scenario import PLANS, RELEASES, Story
from notebooks.generate.tests import Collection
from notebooks.reliability.errors import InputError

MANIFEST = "generated.json"


def prepare(folder: Path) -> None:
    """Empty `folder` for a new data set; refuse a folder that holds anything else."""
    if folder.exists():
        if not folder.is_dir():
            raise InputError(f"{folder} is a file: expected a folder for the generated data")
        if any(folder.iterdir()) and not (folder / MANIFEST).is_file():
            raise InputError(
                f"{folder} is not empty and holds no {MANIFEST}: refusing to overwrite it "
                "(choose another --output)"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def generate(
    folder: Path,
    *,
    size: str = "small",
    seed: int = 1,
    count_tests: bool = True,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate a data set in `folder` (emptied first); returns the manifest.

    `count_tests`: also collect the test suite (in the background) for `tests.json`.
    """
    if size not in PLANS:
        raise InputError(f"size {size!r}: expected one of {', '.join(PLANS)}")
    prepare(folder)
    started = time.monotonic()
    collection = Collection(REPO_ROOT, folder / "logs" / "pytest-collect.txt", enabled=count_tests)
    try:
        story = Story(folder, PLANS[size], seed=seed, progress=progress)
        outcome = story.run()
        tests = collection.result()
    finally:
        collection.stop()
    if tests is not None:
        (folder / "tests.json").write_text(json.dumps(tests.to_json(), indent=2), "utf-8")
    manifest = {
        "size": size,
        "seed": seed,
        "releases": list(RELEASES),
        "imports": outcome.imports,
        "import_statuses": {str(k): v for k, v in sorted((outcome.statuses or {}).items())},
        "phases": outcome.phases,
        "tests": None if tests is None else tests.collected,
        "tests_note": collection.note,
        "seconds": round(time.monotonic() - started, 1),
        "database_url": f"sqlite+aiosqlite:///{folder.resolve() / 'bgg.db'}",
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), "utf-8")
    return manifest
