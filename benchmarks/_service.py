"""Start `python -m system serve` on loopback for a benchmark, and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Service:
    """A running service."""

    url: str
    token: str


@contextmanager
def running_service(env: dict[str, str], *, workers: int = 1) -> Iterator[Service]:
    """The API on a free loopback port with `env` on top of a clean environment."""
    token = "bench-token"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", tmp),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "ADMIN_TOKENS": token,
            "ENVIRONMENT": "benchmark",
            "THUMBNAIL_DIR": f"{tmp}/thumbs",
            "SPOOL_PATH": f"{tmp}/spool.jsonl",
            "LOG_LEVEL": "ERROR",
            **env,
        }
        port = free_port()
        command = [sys.executable, "-m", "system", "serve", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=full_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError("the service exited during start-up")
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not become ready in 60 s")
                time.sleep(0.1)
            yield Service(url=url, token=token)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
