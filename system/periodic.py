"""A step run every few seconds in a task of its own, for as long as the app lives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Periodic:
    """Runs `step` every `interval` seconds from `start()` until `aclose()`.

    A step that raises is logged with its stack and the loop goes on: one bad check must not
    stop the next ones (alerts, recovery probes, spool replays).
    """

    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (the lifespan calls this)."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._step()
            except Exception:
                logger.exception("%s failed", self.name)

    async def aclose(self) -> None:
        """Stop the loop (a step under way is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
