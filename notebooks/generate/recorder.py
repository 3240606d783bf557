"""What the generator saw, written as the chaos harness writes it (`events.jsonl`).

Each line is `{"time": ISO UTC, "t": seconds since start, "scenario", "kind", ...}`, the layout
of `reports/chaos/<run>/events.jsonl`, so one loader reads both: `fault` (switched on/off),
`breaker_state` and `breaker_transition` (polled from the service's monitoring API, with the
service's own timestamp `at`), `alert` (the service's webhook messages), `import` and `phase`.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class EventLog:
    """Appends harness-style events to a JSON-lines file (from any thread)."""

    def __init__(self, path: Path, *, scenario: str = "generated") -> None:
        self.path = path
        self.scenario = scenario
        self._started = time.monotonic()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")

    def emit(self, kind: str, **fields: Any) -> None:
        """Write one event now."""
        event = {
            "time": datetime.now(UTC).isoformat(),
            "t": round(time.monotonic() - self._started, 6),
            "scenario": self.scenario,
            "kind": kind,
            **fields,
        }
        line = json.dumps(event, default=str, separators=(",", ":"))
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
