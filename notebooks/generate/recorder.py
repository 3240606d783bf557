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
from types import TracebackType
from typing import Any

import httpx

from notebooks.generate.client import AdminClient


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


class BreakerWatcher:
    """Polls every breaker's status and logs state changes and transitions until stopped."""

    def __init__(self, client: AdminClient, log: EventLog, *, service: int, interval: float = 0.1):
        self.client = client
        self.log = log
        self.service = service
        self.interval = interval
        self.states: dict[str, str] = {}
        self._seen: set[tuple[str, str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="breaker-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        """One look at the breakers (also called once more when stopping)."""
        try:
            breakers = self.client.breakers()
        except (httpx.HTTPError, KeyError, ValueError):
            return
        for breaker in breakers:
            name = str(breaker["circuit_breaker"])
            state = str(breaker["state"])
            if self.states.get(name) != state:
                self.log.emit(
                    "breaker_state",
                    breaker=name,
                    service=self.service,
                    state=state,
                    previous=self.states.get(name),
                    failure_count=breaker.get("failure_count"),
                )
                self.states[name] = state
            for transition in breaker.get("recent_transitions") or []:
                key = (name, str(transition.get("at")), str(transition.get("to_state")))
                if key in self._seen:
                    continue
                self._seen.add(key)
                self.log.emit(
                    "breaker_transition",
                    breaker=name,
                    service=self.service,
                    from_state=transition.get("from_state"),
                    to_state=transition.get("to_state"),
                    at=transition.get("at"),
                )

    def state(self, breaker: str) -> str | None:
        """The last state seen of `breaker`."""
        return self.states.get(breaker)

    def wait_for(self, breaker: str, state: str, *, timeout: float) -> bool:
        """Wait until `breaker` is seen in `state`; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.states.get(breaker) == state:
                return True
            time.sleep(self.interval)
        return self.states.get(breaker) == state

    def __enter__(self) -> BreakerWatcher:
        self.poll()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self.poll()
