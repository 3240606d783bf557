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
    """In the block (inside the running event loop), SIGINT and SIGTERM call `on_signal`."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
