"""An asyncio TCP proxy with toxics (see `chaos.proxy.toxics`).

`Proxy(listen=("127.0.0.1", 0), upstream=(host, port), name=...)` accepts TCP connections,
opens one upstream connection for each and pipes bytes both ways; toxics alter the stream.
A `Proxy` lives on one event loop: create, start and control it from that loop (or use
`chaos.proxy.server.ProxyServer`, which runs proxies in a thread of their own and offers a
sync Python API and an HTTP control API).

How changes reach connections:

- Adding a toxic applies it to new connections *and* to open ones (each draws its own
  `toxicity` then); removing a toxic takes it off every connection at once. Timers
  (`timeout`, `reset_peer`) start when the toxic reaches the connection.
- `down()` closes the listening socket, so new connections are refused by the kernel
  (ECONNREFUSED), and closes every open connection (FIN on both sides). `up()` listens
  again on the same port.
- `reset_peer` resets: direction `downstream` resets the client side, `upstream` the
  upstream side (the client side is then closed normally), `both` resets both.
- A connection whose upstream cannot be reached is reset at once (the client sees
  ECONNRESET instead of ECONNREFUSED: the proxy itself did accept).
- An EOF is forwarded as a half-close (`shutdown(SHUT_WR)`); a reset read from one side
  becomes a reset on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import struct
from collections.abc import Mapping
from typing import Any, Literal

from chaos.closing import AsyncClosing
from chaos.proxy.toxics import Latency, ResetPeer, Timeout, Toxic, parse_toxic, toxic_json

_LOGGER = logging.getLogger(__name__)
_READ_SIZE = 64 * 1024
_QUEUE_SIZE = 64
_EOF: Literal["eof"] = "eof"
_ERROR: Literal["error"] = "error"
Side = Literal["upstream", "downstream"]
_Item = tuple[float, bytes] | Literal["eof", "error"]


class ToxicExists(ValueError):
    """A toxic with that name is already on the proxy."""


class ToxicNotFound(KeyError):
    """No toxic with that name on the proxy."""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the kernel sends a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def parse_address(value: tuple[str, int] | str) -> tuple[str, int]:
    """`("h", 1)` or `"h:1"` (IPv6 in brackets) -> `("h", 1)`."""
    if isinstance(value, str):
        host, _, port_text = value.rpartition(":")
        if not host or not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"expected host:port, got {value!r}")
        return host.strip("[]"), int(port_text)
    return str(value[0]), int(value[1])


class _Connection:
    """One client connection and its upstream connection."""

    def __init__(
        self,
        proxy: Proxy,
        ident: int,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.id = ident
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.active: dict[str, Toxic] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.last_due: dict[Side, float] = {"upstream": 0.0, "downstream": 0.0}
        self.pumps: list[asyncio.Task[None]] = []
        self.closed = False

    # ----------------------------------------------------------------- toxics

    def activate(self, toxic: Toxic) -> None:
        if self.closed or not self.proxy.draw(toxic):
            return
        self.active[toxic.key] = toxic
        loop = asyncio.get_running_loop()
        if isinstance(toxic, ResetPeer):
            self.timers[toxic.key] = loop.call_later(
                toxic.timeout / 1000, self.reset_for, toxic.direction
            )
        elif isinstance(toxic, Timeout) and toxic.timeout > 0:
            self.timers[toxic.key] = loop.call_later(toxic.timeout / 1000, self.close)

    def deactivate(self, key: str) -> None:
        self.active.pop(key, None)
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def toxics_for(self, side: Side) -> list[Toxic]:
        return [t for t in self.active.values() if t.applies_to(side)]

    # ----------------------------------------------------------------- life cycle

    async def run(self) -> None:
        host, port = self.proxy.upstream
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.proxy.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            _LOGGER.debug("%s: upstream %s:%s unreachable: %r", self.proxy.name, host, port, exc)
            self.closed = True
            _reset(self.client_writer)
            return
        self.upstream_writer = upstream_writer
        if self.closed:  # the proxy went down while we were connecting
            _reset(upstream_writer)
            _reset(self.client_writer)
            return
        for toxic in self.proxy.toxics():
            self.activate(toxic)
        loop = asyncio.get_running_loop()
        self.pumps = [
            loop.create_task(self._pump(self.client_reader, upstream_writer, "upstream")),
            loop.create_task(self._pump(upstream_reader, self.client_writer, "downstream")),
        ]
        await asyncio.gather(*self.pumps, return_exceptions=True)
        self.close()

    def close(self) -> None:
        """Close both sides (FIN after what is buffered) and stop piping."""
        self._shut(reset_client=False, reset_upstream=False)

    def reset_for(self, direction: str) -> None:
        """The `reset_peer` action for a toxic with this direction."""
        self._shut(
            reset_client=direction in ("downstream", "both"),
            reset_upstream=direction in ("upstream", "both"),
        )

    def _shut(self, *, reset_client: bool, reset_upstream: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        for writer, reset in (
            (self.client_writer, reset_client),
            (self.upstream_writer, reset_upstream),
        ):
            if writer is None:
                continue
            if reset:
                _reset(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in self.pumps:
            if task is not current:
                task.cancel()

    # ----------------------------------------------------------------- piping

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, side: Side
    ) -> None:
        queue: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_SIZE)
        loop = asyncio.get_running_loop()

        async def read() -> None:
            try:
                while data := await reader.read(_READ_SIZE):
                    await queue.put((loop.time(), data))
            except OSError:
                await queue.put(_ERROR)
            else:
                await queue.put(_EOF)

        reading = loop.create_task(read())
        try:
            while not self.closed:
                item = await queue.get()
                if item == _ERROR:
                    other_is_client = side == "downstream"
                    self._shut(reset_client=other_is_client, reset_upstream=not other_is_client)
                    return
                if item == _EOF:
                    await self._forward_eof(writer, side)
                    return
                arrival, data = item
                await self._deliver(writer, side, arrival, data)
        except OSError:
            self.close()
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def _forward_eof(self, writer: asyncio.StreamWriter, side: Side) -> None:
        if any(isinstance(t, Timeout) for t in self.toxics_for(side)):
            return  # a black hole forwards nothing, not even the close
        if not writer.is_closing() and writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def _deliver(
        self, writer: asyncio.StreamWriter, side: Side, arrival: float, data: bytes
    ) -> None:
        toxics = self.toxics_for(side)
        if any(isinstance(t, Timeout) for t in toxics):
            return  # black hole: read and discard
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        delay = 0.0
        for toxic in toxics:
            if isinstance(toxic, Latency):
                jitter = proxy.value_rng(toxic).uniform(-toxic.jitter, toxic.jitter)
                delay += max(0.0, toxic.latency + jitter) / 1000
        if delay:
            due = max(arrival + delay, self.last_due[side])
            self.last_due[side] = due
            await asyncio.sleep(max(0.0, due - loop.time()))
        if writer.is_closing():
            raise ConnectionResetError("peer closed")
        writer.write(data)
        await writer.drain()
        proxy.bytes[side] += len(data)


class Proxy(AsyncClosing):
    """A TCP proxy with toxics. Methods must be called on the loop that runs it."""

    def __init__(
        self,
        listen: tuple[str, int] | str = ("127.0.0.1", 0),
        upstream: tuple[str, int] | str = ("127.0.0.1", 0),
        *,
        name: str = "proxy",
        seed: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.listen_host, self.listen_port = parse_address(listen)
        self.upstream = parse_address(upstream)
        self.seed = seed
        self.connect_timeout = connect_timeout
        self.enabled = False
        self.bytes: dict[Side, int] = {"upstream": 0, "downstream": 0}
        self.connections_total = 0
        self._server: asyncio.Server | None = None
        self._toxics: dict[str, Toxic] = {}
        self._toxicity_rngs: dict[str, random.Random] = {}
        self._value_rngs: dict[str, random.Random] = {}
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- life cycle

    @property
    def listen(self) -> tuple[str, int]:
        return (self.listen_host, self.listen_port)

    @property
    def address(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    async def start(self) -> Proxy:
        """Listen (port 0 picks a free port, kept for later `up()` calls)."""
        await self.up()
        return self

    async def up(self) -> None:
        """Accept connections again, on the same port."""
        if self.enabled:
            return
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.listen_port, reuse_address=True, backlog=1024
        )
        if self.listen_port == 0:
            self.listen_port = int(self._server.sockets[0].getsockname()[1])
        self.enabled = True

    async def down(self) -> None:
        """Refuse new connections (listening socket closed) and close open ones."""
        if not self.enabled:
            return
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.close()
        if server is not None:
            await server.wait_closed()

    async def stop(self, grace: float = 2.0) -> None:
        """`down()`, then wait for every connection handler to finish (cancelled if slow)."""
        await self.down()
        handlers = list(self._handlers)
        if not handlers:
            return
        _, pending = await asyncio.wait(handlers, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> Proxy:
        return await self.start()

    aclose = stop  # what the `async with` block's end calls

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            _reset(writer)
            return
        task = asyncio.current_task()
        connection = _Connection(self, next(self._ids), reader, writer)
        self.connections_total += 1
        self._connections.add(connection)
        if task is not None:
            self._handlers.add(task)
        try:
            await connection.run()
        except asyncio.CancelledError:
            # Swallowed on purpose: only stop() cancels handlers, and on Python 3.11 asyncio's
            # stream callback logs an error for a client_connected_cb task that ends cancelled.
            connection.close()
        except Exception:
            _LOGGER.exception("%s: connection %s failed", self.name, connection.id)
            connection.close()
        finally:
            for pump in connection.pumps:
                pump.cancel()
            await asyncio.gather(*connection.pumps, return_exceptions=True)
            self._connections.discard(connection)
            if task is not None:
                self._handlers.discard(task)

    # ----------------------------------------------------------------- toxics

    def toxics(self) -> list[Toxic]:
        return list(self._toxics.values())

    def add_toxic(self, toxic: Toxic | Mapping[str, Any]) -> Toxic:
        """Add a toxic (to new and open connections). Raises ToxicExists, ValidationError."""
        parsed = parse_toxic(toxic)
        key = parsed.key
        if key in self._toxics:
            raise ToxicExists(f"toxic {key!r} already exists on proxy {self.name!r}")
        parsed = parsed.model_copy(update={"name": key})
        self._toxics[key] = parsed
        self._toxicity_rngs[key] = random.Random(f"{self.seed}:{key}:toxicity")
        self._value_rngs[key] = random.Random(f"{self.seed}:{key}:values")
        for connection in list(self._connections):
            if connection.upstream_writer is not None:
                connection.activate(parsed)
        return parsed

    def remove_toxic(self, key: str) -> None:
        """Remove a toxic from the proxy and every open connection."""
        if key not in self._toxics:
            raise ToxicNotFound(key)
        del self._toxics[key]
        self._toxicity_rngs.pop(key, None)
        self._value_rngs.pop(key, None)
        for connection in self._connections:
            connection.deactivate(key)

    def clear_toxics(self) -> None:
        for key in list(self._toxics):
            self.remove_toxic(key)

    def draw(self, toxic: Toxic) -> bool:
        """Does `toxic` apply to one more connection? (seeded per toxic)"""
        if toxic.toxicity >= 1.0:
            return True
        rng = self._toxicity_rngs.get(toxic.key)
        return rng is not None and rng.random() < toxic.toxicity

    def value_rng(self, toxic: Toxic) -> random.Random:
        """The seeded generator for the jitter of `toxic`."""
        rng = self._value_rngs.get(toxic.key)
        if rng is None:
            rng = self._value_rngs[toxic.key] = random.Random(f"{self.seed}:{toxic.key}:values")
        return rng

    # ----------------------------------------------------------------- reporting

    def info(self) -> dict[str, Any]:
        host, port = self.upstream
        return {
            "name": self.name,
            "listen": self.address,
            "upstream": f"{host}:{port}",
            "enabled": self.enabled,
            "toxics": [toxic_json(t) for t in self._toxics.values()],
            "connections": {"active": len(self._connections), "total": self.connections_total},
            "bytes": dict(self.bytes),
        }

    def __repr__(self) -> str:
        state = "up" if self.enabled else "down"
        return (
            f"<Proxy {self.name} {self.address} -> {self.upstream[0]}:{self.upstream[1]} {state}>"
        )
