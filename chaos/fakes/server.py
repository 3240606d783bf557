"""Run an ASGI app with uvicorn on a loopback port, in a daemon thread or in the foreground.

`run_in_thread(app)` binds the port itself (so port 0 gives a free one immediately), starts
uvicorn in a daemon thread with its own event loop and returns once the server accepts
connections. `RunningServer.stop()` asks uvicorn to exit and, after a short grace period,
closes connections that are still waiting for an answer (a hanging fault, a long delay), so
it returns within about a second; those clients see the connection close without a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from chaos.closing import Closing

_GRACE = 0.2
_LOGGER = logging.getLogger(__name__)


def check_loopback(host: str) -> str:
    """Return `host` if it is a loopback address (or `localhost`), else raise ValueError."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback address, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be a loopback address, got {host!r}")
    return host


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on a loopback address (port 0: any free port)."""
    host = check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
    # and without it every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_config(app: Any, **overrides: Any) -> uvicorn.Config:
    """Uvicorn settings for fakes: quiet, no websockets, no global logging changes."""
    options: dict[str, Any] = {
        "lifespan": "off",
        "log_config": None,
        "log_level": "warning",
        "access_log": False,
        "ws": "none",
        "timeout_graceful_shutdown": 1,
        "timeout_keep_alive": 5,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class RunningServer(Closing):
    """A uvicorn server running in a daemon thread. Use as a context manager or `stop()`."""

    def __init__(self, app: Any, sock: socket.socket, *, name: str = "fake") -> None:
        self.app = app
        self.name = name
        host, port = sock.getsockname()[:2]
        self.host: str = host
        self.port: int = port
        self._sock = sock
        self._server = uvicorn.Server(uvicorn_config(app))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}-server", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._sock])

        try:
            asyncio.run(serve())
        except BaseException as exc:  # SystemExit on start-up failure included
            self._error = exc
        finally:
            self._sock.close()

    def start(self, timeout: float = 5.0) -> RunningServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name} server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} server did not start within {timeout} s")
            time.sleep(0.002)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the server; requests still in flight after a short grace period are cut."""
        if not self._thread.is_alive():
            return
        self._server.should_exit = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(loop.call_later, _GRACE, self._cut_stalled)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._thread.is_alive():
            _LOGGER.warning("%s server thread did not stop", self.name)

    def _cut_stalled(self) -> None:
        """Close connections whose request has not been answered yet (uvicorn internals)."""
        state = getattr(self._server, "server_state", None)
        for connection in list(getattr(state, "connections", ())):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if cycle is not None and transport is not None and not cycle.response_complete:
                transport.close()

    close = stop  # what the `with` block's end calls

    def __repr__(self) -> str:
        return f"<RunningServer {self.name} {self.url}>"


def run_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str | None = None
) -> RunningServer:
    """Start `app` on `host:port` (loopback only; 0 = a free port) and wait until it listens."""
    sock = bind_socket(host, port)
    label = name or getattr(app, "name", None) or "asgi"
    return RunningServer(app, sock, name=str(label)).start()


def run_foreground(app: Any, sock: socket.socket) -> None:
    """Serve `app` on an already bound socket in this thread until SIGINT/SIGTERM."""
    server = uvicorn.Server(uvicorn_config(app, timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
