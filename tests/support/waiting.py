"""Waiting for something that happens elsewhere (a server, a task, a process), boundedly.

The one way tests poll: `await eventually(probe, "what")` in async tests, `eventually_sync`
where there is no event loop. Both give up after `within` seconds with an AssertionError that
names what was awaited and the last value seen, so a broken feature fails fast and readably
instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: Long enough for a loaded CI machine, short next to the per-test timeout.
DEFAULT_TIMEOUT = 10.0
INTERVAL = 0.01


def _truthy(value: object) -> bool:
    return bool(value)


def _gave_up(what: str, timeout: float, last: object, polls: int) -> AssertionError:
    return AssertionError(
        f"timed out after {timeout:g} s ({polls} polls) waiting for {what}; last value: {last!r}"
    )


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    what: str,
    *,
    until: Callable[[T], bool] = ...,
    within: float = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], bool] = ...,
    within: float = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    what: str,
    *,
    until: Callable[[Any], bool] = _truthy,
    within: float = DEFAULT_TIMEOUT,
) -> Any:
    """Call `probe` (sync or async) until `until(value)` holds; return that value.

    `what` completes "waiting for ..." in the failure message.
    """
    deadline = time.monotonic() + within
    polls = 0
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        polls += 1
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _gave_up(what, within, value, polls)
        await asyncio.sleep(INTERVAL)


def eventually_sync(
    probe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], bool] = _truthy,
    within: float = DEFAULT_TIMEOUT,
) -> T:
    """`eventually` for code with no event loop (threads, subprocesses): blocks while polling."""
    deadline = time.monotonic() + within
    polls = 0
    while True:
        value = probe()
        polls += 1
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _gave_up(what, within, value, polls)
        time.sleep(INTERVAL)
