"""chaos.closing: the end of a `with` block releases the resource, also when the block raises."""

from __future__ import annotations

import pytest

from chaos.closing import AsyncClosing, Closing


class _Resource(Closing):
    closed = 0

    def close(self) -> None:
        self.closed += 1


class _AsyncResource(AsyncClosing):
    closed = 0

    async def aclose(self) -> None:
        self.closed += 1


def test_the_block_gets_the_object_and_its_end_closes_it_once() -> None:
    resource = _Resource()
    with resource as entered:
        assert entered is resource
    assert resource.closed == 1
    with pytest.raises(RuntimeError), resource:
        raise RuntimeError("boom")
    assert resource.closed == 2


async def test_the_async_block_awaits_aclose_even_when_it_raises() -> None:
    resource = _AsyncResource()
    async with resource as entered:
        assert entered is resource
    with pytest.raises(RuntimeError):
        async with resource:
            raise RuntimeError("boom")
    assert resource.closed == 2
