"""The task runner (automatic retry sweeps): bounded concurrency."""

from __future__ import annotations

import asyncio

from system.tasks.runner import TaskRunner
from tests.support.waiting import eventually


async def test_at_most_concurrency_tasks_run_at_once() -> None:
    runner = TaskRunner(concurrency=3)
    running = peak = 0
    release = asyncio.Event()

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    for n in range(10):
        runner.submit(work(), name=f"w{n}")
    await eventually(lambda: runner.running, "the first tasks to start", until=lambda n: n >= 3)
    assert (peak, runner.running, runner.pending) == (3, 3, 10)
    release.set()
    await runner.join()
    assert runner.pending == 0
