"""`events.jsonl`: one JSON line per fault switched, probe result, breaker transition, ...

Each event has `time` (UTC, ISO 8601), `t` (seconds since the run started, monotonic),
`scenario` (or null) and `kind`, plus fields of its own. The file is written as events
happen (line-buffered), so an interrupted run still leaves what it saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

Listener = Callable[[dict[str, Any]], None]


def utc_now() -> str:
    """The wall clock in UTC, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(value: Any) -> float | None:
    """An ISO-8601 timestamp (the service's, or an event's) as epoch seconds (None if absent)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class EventLog:
    """Appends events to a JSON-lines file (or only keeps them, without a path)."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8", buffering=1)
        self.scenario: str | None = None
        self.count = 0
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(event)` for every event from now on (the progress display)."""
        self._listeners.append(listener)

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record one event now; returns it."""
        event: dict[str, Any] = {
            "time": utc_now(),
            "t": round(time.monotonic() - self._started, 6),
            "scenario": self.scenario,
            "kind": kind,
            **fields,
        }
        line = json.dumps(event, default=str, separators=(",", ":"))
        with self._lock:
            self.count += 1
            if self._file is not None:
                self._file.write(line + "\n")
        for listener in self._listeners:
            listener(event)
        return event

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, skipping any line that is not one (a torn last
    line, from a process killed while it wrote)."""
    objects = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    return objects


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of `events.jsonl` (a torn last line, from a killed run, is left out)."""
    return json_lines(path) if path.is_file() else []
