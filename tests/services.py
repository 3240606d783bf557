"""Real backing services for tests: the machine's Redis, or a redis-server of the test's own.

Tests that need a service skip when it is missing, unless `TEST_REQUIRE_SERVICES=1` (CI sets
it), in which case they fail: CI must never pass by skipping the real thing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from chaos.service import ServiceProcess, free_port
from tests.support.waiting import eventually_sync

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("TEST_REQUIRE_SERVICES") == "1"


def missing(reason: str) -> None:
    """Skip, or fail when services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class RedisServer:
    """A redis-server process on a port of its own, stopped and started at will."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server is not installed")
        self.binary = str(binary)
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port and wait until it answers."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        eventually_sync(
            lambda: port_open("127.0.0.1", self.port, 0.2), f"redis-server on port {self.port}"
        )

    def stop(self) -> None:
        """Stop it; clients now get connection refused."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@asynccontextmanager
async def hung_server() -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """A TCP server on loopback that accepts and never answers: (its port, the connections)."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """A private redis-server for the block."""
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve(
    env: dict[str, str], directory: Path, *, workers: int = 1, name: str = "test"
) -> Iterator[ServiceProcess]:
    """`python -m system serve` with `env` (plus PATH), ready, stopped at the end."""
    full_env = {"PATH": os.environ.get("PATH", ""), **env}
    process = ServiceProcess(name, full_env, log_path=directory / f"{name}.log", workers=workers)
    process.start()
    try:
        process.wait_ready(30)
        yield process
    finally:
        process.stop()
