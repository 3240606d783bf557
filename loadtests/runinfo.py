"""What `summary.json` says about the run itself: command, versions, machine, service."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from chaos.meta import git_commit
from loadtests.arguments import PROG

_SECRET_KEY = re.compile(r"TOKEN|SECRET|PASSWORD|DSN|KEY")


def redacted(env: Mapping[str, str]) -> dict[str, str]:
    """Settings fit for a report: secrets masked, passwords taken out of URLs."""
    shown: dict[str, str] = {}
    for key, value in env.items():
        if _SECRET_KEY.search(key):
            shown[key] = "***"
            continue
        parts = urlsplit(value)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            value = parts._replace(netloc=netloc).geturl()
        shown[key] = value
    return shown


def context(
    args: argparse.Namespace,
    argv: Sequence[str],
    target: dict[str, Any],
    load_at_start: tuple[float, float, float],
) -> dict[str, Any]:
    """The run's context: command line, date, sizes, versions, machine, target."""
    try:
        locust_version: str | None = version("locust")
    except PackageNotFoundError:
        locust_version = None
    return {
        "command": f"{PROG} {shlex.join(argv)}".strip(),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "duration_s": args.duration,
        "locust_processes": args.locust_processes,
        "locust": locust_version,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "git": git_commit(),  # commit and dirty are None when git cannot tell
        **target,
    }
