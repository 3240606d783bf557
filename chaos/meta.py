"""What a report says about where it came from: versions and the git commit."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from typing import Any

from chaos.engine import HARNESS_VERSION
from chaos.service import REPO_ROOT

PACKAGES = ("bgg-reliability", "fastapi", "uvicorn", "httpx", "sqlalchemy", "pybreaker",
            "tenacity", "redis", "asyncpg", "rich")  # fmt: skip


def versions() -> dict[str, Any]:
    """Python, the harness, the service and the packages that matter to the results."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "harness": HARNESS_VERSION,
        "service": found.pop("bgg-reliability"),
        "packages": found,
    }


def git_commit() -> dict[str, Any]:
    """The checked-out commit and whether the tree has uncommitted changes (read-only)."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(  # noqa: S603 - fixed read-only git commands
                ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
