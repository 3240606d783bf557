"""The project's test count, collected while the data set is generated.

`python -m pytest --collect-only -q` runs in the background (it takes ~10 s here, about as
long as starting the service), and its output becomes `tests.json`. Without pytest (or when
collection fails outright) there is no count, and the report says so.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from notebooks.reliability.errors import InputError
from notebooks.reliability.testcount import TestCount, parse_collect_only


class Collection:
    """`pytest --collect-only -q` running in the background."""

    def __init__(self, repo: Path, output: Path, *, enabled: bool = True) -> None:
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None
        self.note = ""
        if not enabled:
            self.note = "not collected: a test report was given"
            return
        if importlib.util.find_spec("pytest") is None:
            self.note = "pytest is not installed here: no test count"
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                cwd=repo,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def result(self, timeout: float = 120.0) -> TestCount | None:
        """The count, or None (with `note` saying why)."""
        if self.process is None:
            return None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            self.note = f"pytest --collect-only did not finish in {timeout:.0f} s"
            return None
        text = self.output.read_text(encoding="utf-8", errors="replace")
        try:
            return parse_collect_only(text)
        except InputError:
            self.note = "pytest --collect-only printed no count"
            return None

    def stop(self) -> None:
        """Stop the collection if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
