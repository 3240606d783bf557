"""`python -m system serve` as a subprocess on a free loopback port, started and stopped.

The generator drives the real service from outside, as the chaos harness does: the service
gets its settings from the environment (a clean one plus what the caller gives), logs to a
file, and is stopped with SIGTERM (its drain), then killed if it does not exit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parents[2]


class ServiceError(RuntimeError):
    """The service would not start (the message says why and where its log is)."""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One `python -m system serve` process; a context manager that always stops it."""

    def __init__(self, env: dict[str, str], *, log_path: Path, ready_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only if HOME is unset
            "PYTHONPATH": str(REPO),
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        """Start and wait until `/health/ready` answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "system", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                try:
                    if client.get(f"{self.url}/health/ready").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if self.process.poll() is not None:
                    raise ServiceError(
                        f"the service exited during start-up (code {self.process.returncode});"
                        f" see {self.log_path}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServiceError(
                        f"the service was not ready after {self.ready_timeout:.0f} s; "
                        f"see {self.log_path}"
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
