"""The errors the analysis raises for input it cannot use.

Each says in one line what was wrong and what was expected, so the command line can print it
as it is (exit 2) and a notebook shows it without a wall of pandas frames.
"""

from __future__ import annotations


class InputError(Exception):
    """Input that cannot be analysed: a missing file, an empty export, another shape."""


class MalformedRowError(InputError):
    """One row (or event) of otherwise usable input is broken; the message names it."""

    def __init__(self, source: str, row: str, problem: str) -> None:
        super().__init__(f"{' '.join(p for p in (source, row) if p)}: {problem}")
        self.source = source
        self.row = row
        self.problem = problem
