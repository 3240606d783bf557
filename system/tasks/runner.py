"""Runs background tasks with bounded concurrency, and drains them at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class TaskRunner:
    """At most `concurrency` tasks run at once; the rest wait their turn."""

    def __init__(self, concurrency: int) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.concurrency = concurrency
        self.running = 0
        self._closing = False

    @property
    def pending(self) -> int:
        """Tasks submitted and not finished (running or waiting)."""
        return len(self._tasks)

    def submit(self, work: Coroutine[Any, Any, object], *, name: str) -> asyncio.Task[None]:
        """Schedule `work`; returns its task (tests await it)."""
        if self._closing:
            work.close()
            raise RuntimeError("the task runner is shutting down")
        task = asyncio.create_task(self._run(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, work: Coroutine[Any, Any, object], name: str) -> None:
        async with self._semaphore:
            self.running += 1
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                # Tasks record their own failures; reaching here is a bug worth a stack.
                logger.exception("background task %s crashed", name)
            finally:
                self.running -= 1

    async def join(self) -> None:
        """Wait until every task submitted so far has finished (tests use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, grace: float) -> int:
        """Stop accepting work, wait up to `grace` s, cancel the rest; returns how many."""
        self._closing = True
        if not self._tasks:
            return 0
        _, still_running = await asyncio.wait(list(self._tasks), timeout=grace)
        for task in still_running:
            task.cancel()
        if still_running:
            logger.warning("cancelled %d background tasks at shutdown", len(still_running))
            await asyncio.gather(*still_running, return_exceptions=True)
        return len(still_running)
