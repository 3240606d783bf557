"""The polling helper: returns what it waited for, or says what it waited for and saw."""

from __future__ import annotations

import itertools

import pytest

from tests.support.waiting import eventually, eventually_sync


async def test_returns_the_first_value_that_satisfies() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter), "three", until=lambda n: n >= 3) == 3


async def test_awaits_an_async_probe() -> None:
    counter = itertools.count()

    async def probe() -> int:
        return next(counter)

    assert await eventually(probe, "two", until=lambda n: n == 2) == 2


async def test_gives_up_naming_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the door to open; last value: 'shut'"):
        await eventually(
            lambda: "shut", "the door to open", until=lambda s: s == "open", within=0.05
        )


def test_sync_twin_behaves_alike() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter), "a truthy value") == 1
    with pytest.raises(AssertionError, match=r"waiting for a job; last value: \[\]"):
        eventually_sync(list, "a job", within=0.05)
