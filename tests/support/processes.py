"""Looking at processes: through Linux's /proc (children, running), and at what they print."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest


def children(pid: int) -> list[int]:
    """The direct children of `pid` (none if it is gone)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants, breadth first."""
    pids = [pid]
    for parent in pids:  # grows while it is walked
        pids.extend(children(parent))
    return pids


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class OutputLines:
    """A child process's stdout read line by line on a thread, so a test can wait for a line
    with a deadline (a plain readline would block past it) and still have everything printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, wanted: str, within: float, what: str = "the process") -> None:
        """Read until the line `wanted`; fail the test if the process ends first."""
        deadline = time.monotonic() + within
        while True:
            line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                pytest.fail(f"{what} exited before it was ready: {self.seen[-8:]}")
            self.seen.append(line)
            if line == wanted:
                return

    def close(self) -> None:
        """After the process ended: keep its last lines, stop the reader."""
        while (line := self._lines.get(timeout=5)) is not None:
            self.seen.append(line)
        self._reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
