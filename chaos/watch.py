"""Background observers that run while a scenario runs.

- `PublicSampler` calls the public API every `interval` seconds on every service of the
  deployment and keeps each answer (a `public_call` event each), so "0 % errors during the
  fault" is judged on what really happened throughout the fault, not on one call before and
  one after.
- `BreakerWatcher` polls every breaker's status and turns changes into `breaker` events:
  the state each poll saw, and the service's own recorded transitions (with the service's
  timestamp), so the journal shows when the breaker really changed, not when we looked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chaos.client import Call, ServiceClient
from chaos.events import EventLog
from chaos.stats import percentile, rate, rounded


@dataclass(frozen=True, slots=True)
class Window:
    """Public API figures over a time window."""

    samples: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def to_json(self) -> dict[str, Any]:
        """Plain data for probes and the summary."""
        return {
            "samples": self.samples,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": rounded(self.p50_ms),
            "p99_ms": rounded(self.p99_ms),
            "max_ms": rounded(self.max_ms),
        }


class _Observer:
    """Calls `round()` every `interval` seconds in the background while `running` is set."""

    name = "observer"

    def __init__(self, clients: list[ServiceClient], events: EventLog, interval: float) -> None:
        self.clients = clients
        self.events = events
        self.interval = interval
        #: Cleared by `quiet` to pause the loop; set again afterwards.
        self.running = asyncio.Event()
        self.running.set()
        self._task: asyncio.Task[None] | None = None

    async def round(self) -> None:
        """One observation of every client."""
        raise NotImplementedError

    def start(self) -> None:
        """Begin observing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            await self.running.wait()
            await self.round()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop observing (what was observed stays)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class PublicSampler(_Observer):
    """Polls `GET /api/public/games` on each client until stopped."""

    name = "public-sampler"

    def __init__(
        self, clients: list[ServiceClient], events: EventLog, *, interval: float = 0.05
    ) -> None:
        super().__init__(clients, events, interval)
        self.calls: list[Call] = []

    async def round(self) -> None:
        """One call to each client."""
        await self.sample()

    async def sample(self) -> None:
        """One round over every client, recorded like the background samples.

        What a timing-critical measurement calls between its own requests while the
        background loop is paused (`quiet`), so the public API stays watched throughout.
        """
        for index, client in enumerate(self.clients):
            call = await client.public_games()
            self.calls.append(call)
            # Every sample, not only the errors: the report's timeline draws the latency and
            # error rate the public saw over the whole fault.
            self.events.emit("public_call", service=index, **call.summary())
            if call.status != 200:
                self.events.emit("public_error", url=client.url, **call.summary())

    def window(self, start: float = 0.0, end: float = float("inf")) -> Window:
        """Figures for calls started in `[start, end]` (monotonic seconds)."""
        chosen = [c for c in self.calls if start <= c.started <= end]
        latencies = [c.latency_ms for c in chosen if c.status is not None]
        errors = sum(1 for c in chosen if c.status != 200)
        return Window(
            len(chosen),
            errors,
            rate(errors, len(chosen)),
            percentile(latencies, 50),
            percentile(latencies, 99),
            max(latencies) if latencies else None,
        )


@contextlib.asynccontextmanager
async def quiet(*observers: _Observer) -> AsyncIterator[None]:
    """Pause background observers for a short timing-critical measurement.

    On a 2-core machine the harness's own polling competes with the service for the CPU
    and delays the harness's event loop; a latency promise ("p99 < 50 ms") is measured
    without that noise. Keep such blocks short (a second or two), and keep a paused sampler's
    promise watched by calling `PublicSampler.sample()` between the measured requests.
    """
    for observer in observers:
        observer.running.clear()
    try:
        yield
    finally:
        for observer in observers:
            observer.running.set()


class BreakerWatcher(_Observer):
    """Polls the breakers of every client; records states seen and transitions."""

    name = "breaker-watcher"

    def __init__(
        self, clients: list[ServiceClient], events: EventLog, *, interval: float = 0.1
    ) -> None:
        super().__init__(clients, events, interval)
        self.last: dict[tuple[int, str], str] = {}
        self.seen: dict[str, set[str]] = {}
        self.transitions: list[dict[str, Any]] = []
        self._known: set[tuple[int, str, str, str, str]] = set()

    async def round(self) -> None:
        """One look at each client's breakers."""
        await self.poll()

    async def poll(self) -> None:
        """One round over every client (also called directly for a fresh look)."""
        for index, client in enumerate(self.clients):
            statuses = await client.breakers()
            for name, status in statuses.items():
                self._observe(index, name, status)

    def _observe(self, index: int, name: str, status: dict[str, Any]) -> None:
        state = str(status.get("state"))
        self.seen.setdefault(name, set()).add(state)
        previous = self.last.get((index, name))
        if previous != state:
            self.last[(index, name)] = state
            self.events.emit(
                "breaker_state",
                breaker=name,
                service=index,
                state=state,
                previous=previous,
                failure_count=status.get("failure_count"),
                storage=status.get("state_storage"),
            )
        for item in status.get("recent_transitions") or []:
            key = (index, name, str(item.get("from_state")), str(item.get("to_state")),
                   str(item.get("at")))  # fmt: skip
            if key in self._known:
                continue
            self._known.add(key)
            transition = {
                "breaker": name,
                "service": index,
                "from_state": item.get("from_state"),
                "to_state": item.get("to_state"),
                "at": item.get("at"),
            }
            self.transitions.append(transition)
            self.events.emit("breaker_transition", **transition)

    def forget(self) -> None:
        """Start a new scenario: keep the transitions already known as known."""
        self.seen.clear()
        self.transitions.clear()
