"""Start the service on loopback for a benchmark (the chaos harness's process wrapper)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chaos.service import ServiceProcess, free_port

REPO = Path(__file__).resolve().parent.parent
__all__ = ["REPO", "Service", "free_port", "running_service"]


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
        service = ServiceProcess(
            "benchmark", full_env, log_path=Path(tmp) / "service.log", workers=workers
        )
        service.start()
        try:
            service.wait_ready(60)
            yield Service(url=service.url, token=token)
        finally:
            service.stop()
