"""One `with` protocol for the harness's resources: the block's end calls `close()` (`aclose()`)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any


class Closing(AbstractContextManager[Any]):
    """A resource a `with` block releases by calling its `close()`.

    `contextlib.AbstractContextManager` supplies `__enter__` (returning the object); this adds
    the `__exit__` every resource of the harness wrote out by hand before.
    """

    def close(self) -> None:
        """Release the resource; subclasses say how."""
        raise NotImplementedError

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClosing(AbstractAsyncContextManager[Any]):
    """A resource an `async with` block releases by awaiting its `aclose()`."""

    async def aclose(self) -> None:
        """Release the resource; subclasses say how."""
        raise NotImplementedError

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
