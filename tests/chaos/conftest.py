"""A TCP echo server for the proxy tests (the fakes and the proxy server are in the root
conftest, shared with the service's own tests)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(10)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="session")
def echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on loopback: `(host, port)`."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()
    server.server_close()
    thread.join(2)
