"""An httpx transport wrapper that lets only httpx's own errors out of the connection layer.

httpcore and anyio can raise plain Python errors when a peer resets a connection at the
wrong moment: seen in the chaos harness's `network_errors` scenario, an `AttributeError`
from anyio asking a socket the reset had already closed for its peer name. To a caller that
is a network error like any other, and it must be handled as one (retried, counted by the
breaker, answered 502), not surface as a 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx

logger = logging.getLogger(__name__)


class NetworkErrorsOnly(httpx.AsyncBaseTransport):
    """Wraps `inner`: any non-httpx exception while sending or reading becomes `ReadError`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through `inner`; its body stream is guarded the same way."""
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.HTTPError:
            raise
        except Exception as exc:
            raise _as_network_error(exc, request) from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _GuardedStream(response.stream, request)
        return response

    async def aclose(self) -> None:
        """Close `inner`."""
        await self.inner.aclose()


class _GuardedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self.inner = inner
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except httpx.HTTPError:
            raise
        except Exception as exc:
            raise _as_network_error(exc, self.request) from exc

    async def aclose(self) -> None:
        await self.inner.aclose()


def _as_network_error(exc: Exception, request: httpx.Request) -> httpx.ReadError:
    # Logged with its stack: should it be our bug after all, it is visible, not swallowed.
    logger.warning(
        "connection layer raised %s for %s: handled as a network error",
        type(exc).__name__,
        request.url.host,
        exc_info=exc,
    )
    return httpx.ReadError(f"{type(exc).__name__} in the connection layer: {exc}", request=request)
