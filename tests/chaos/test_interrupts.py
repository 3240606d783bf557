"""`chaos.interrupts`: signals inside the event loop call a function, and the process's own
handlers are back afterwards (asyncio's `remove_signal_handler` alone leaves the default)."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

import pytest

from chaos import interrupts


def _noted(signum: int, _frame: FrameType | None) -> None:
    raise AssertionError(f"signal {signum} reached the handler from before the block")


async def test_a_signal_in_the_block_calls_the_function_and_the_old_handlers_come_back() -> None:
    before = {sig: signal.signal(sig, _noted) for sig in interrupts.SIGNALS}
    try:
        for sig in interrupts.SIGNALS:
            called = asyncio.Event()
            with interrupts.calling(called.set):
                os.kill(os.getpid(), sig)
                await asyncio.wait_for(called.wait(), 5)
            assert signal.getsignal(sig) is _noted
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


async def test_a_cancelled_task_runs_its_cleanup() -> None:
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            cleaned.set()

    task = asyncio.create_task(work())
    with interrupts.calling(task.cancel):
        await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    assert cleaned.is_set()
