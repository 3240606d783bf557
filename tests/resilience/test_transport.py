"""Only httpx's errors leave the BGG client's connection layer (`NetworkErrorsOnly`).

A non-httpx error from httpcore or anyio (a reset socket asked for its peer name) must reach
the client as a network error it retries and the breaker counts, never as a 500. The inner
transports below stand for such a connection layer; the pass-through cases use a real one
over a socket to the fake BGG.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from system.resilience.transport import NetworkErrorsOnly
from tests.fakes import Upstreams


class _Failing(httpx.AsyncBaseTransport):
    """A connection layer that raises `error` when sending, or mid-body after one chunk."""

    def __init__(self, error: Exception, *, mid_body: bool = False) -> None:
        self.error = error
        self.mid_body = mid_body
        self.closed = False
        self.stream_closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.mid_body:
            raise self.error
        return httpx.Response(200, stream=_Body(self), request=request)

    async def aclose(self) -> None:
        self.closed = True


class _Body(httpx.AsyncByteStream):
    def __init__(self, owner: _Failing) -> None:
        self.owner = owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"<items>"
        raise self.owner.error

    async def aclose(self) -> None:
        self.owner.stream_closed = True


def _client(inner: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=NetworkErrorsOnly(inner), base_url="http://bgg.test")


async def test_a_plain_error_while_sending_is_a_read_error_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = AttributeError("'NoneType' object has no attribute 'getpeername'")
    with caplog.at_level(logging.WARNING, logger="system.resilience.transport"):
        async with _client(_Failing(error)) as client:
            with pytest.raises(httpx.ReadError) as raised:
                await client.get("/thing?id=13")
    assert str(raised.value) == (
        "AttributeError in the connection layer: 'NoneType' object has no attribute 'getpeername'"
    )
    assert raised.value.__cause__ is error
    assert raised.value.request.url == "http://bgg.test/thing?id=13"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "connection layer raised AttributeError for bgg.test: handled as a network error"
    )
    assert record.exc_info is not None and record.exc_info[1] is error


async def test_a_plain_error_mid_body_is_a_read_error_after_the_first_chunk() -> None:
    error = KeyError("socket")
    inner = _Failing(error, mid_body=True)
    chunks: list[bytes] = []

    async def read(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)

    async with _client(inner) as client:
        async with client.stream("GET", "/thing?id=13") as response:
            with pytest.raises(httpx.ReadError) as raised:
                await read(response)
        assert inner.stream_closed, "closing the response closes the inner body"
    assert chunks == [b"<items>"]
    assert str(raised.value) == "KeyError in the connection layer: 'socket'"
    assert raised.value.__cause__ is error
    assert raised.value.request.url.host == "bgg.test"


@pytest.mark.parametrize("mid_body", [False, True], ids=["sending", "mid-body"])
async def test_httpx_errors_pass_through_as_themselves(mid_body: bool) -> None:
    error = httpx.RemoteProtocolError("peer closed connection")
    async with _client(_Failing(error, mid_body=mid_body)) as client:
        with pytest.raises(httpx.RemoteProtocolError) as raised:
            await client.get("/thing?id=13")
    assert raised.value is error


async def test_a_refused_connection_stays_a_connect_error() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    async with _client(httpx.AsyncHTTPTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/xmlapi2/thing?id=1")


async def test_answers_pass_through_whole(
    upstreams: Upstreams,
) -> None:
    async with httpx.AsyncClient(transport=NetworkErrorsOnly(httpx.AsyncHTTPTransport())) as client:
        response = await client.get(f"{upstreams.bgg_base_url}/thing", params={"id": 13})
        assert response.status_code == 200
        assert response.text.rstrip().endswith("</items>")


async def test_closing_closes_the_inner_transport() -> None:
    inner = _Failing(OSError("unused"))
    await NetworkErrorsOnly(inner).aclose()
    assert inner.closed
