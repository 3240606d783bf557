"""The errors the analysis raises for input it cannot use.

Each says in one line what was wrong and what was expected, so the command line can print it
as it is (exit 2) and a notebook shows it without a wall of pandas frames. `json_lines` reads
the JSON-lines files (harness events, Sentry exports) the same way for every loader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class InputError(Exception):
    """Input that cannot be analysed: a missing file, an empty export, another shape."""


class MalformedRowError(InputError):
    """One row (or event) of otherwise usable input is broken; the message names it."""

    def __init__(self, source: str, row: str, problem: str) -> None:
        super().__init__(f"{' '.join(p for p in (source, row) if p)}: {problem}")
        self.source = source
        self.row = row
        self.problem = problem


def json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, value) for each non-blank line of a JSON-lines file; a line that is not
    JSON raises `MalformedRowError` naming it."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MalformedRowError(
                    str(path), f"line {number}", f"is not JSON ({exc.msg})"
                ) from None
            yield number, value
