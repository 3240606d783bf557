"""Ctrl-C and SIGTERM as a clean stop, alike for `run`, `stack` and `demo`: outside the event
loop either signal raises `Interrupted` (`raising`), so the command's `finally` stops what had
started; inside it, either calls a function (`calling`), usually one cancelling the work's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the command was not in its event loop."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """In the block, SIGINT and SIGTERM raise `Interrupted`; the handlers before, after it."""
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def calling(on_signal: Callable[[], object]) -> Iterator[None]:
    """In the block (inside the running event loop), SIGINT and SIGTERM call `on_signal`;
    the handlers before, after it.

    `on_signal` runs as a loop callback, so a task it cancels stops at an `await` and runs
    its cleanup. A handler raising instead could fire between any two bytecodes: in another
    task than the one with the cleanup, or between taking a lock and the `try` releasing it.
    """
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)  # which leaves the default action, not `handler`
            if handler is not None:
                signal.signal(sig, handler)
