"""`python -m benchmarks.reads` runs end to end in a tiny mode and writes its report.

Only the shape is checked: how fast anything is depends on the machine, so the targets are
printed by the benchmark and never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos.service import REPO_ROOT

STATS = {"rps", "rps_rounds", "p50_ms", "p99_ms", "requests", "statuses", "client_cpu"}


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    output = tmp_path / "reads.json"
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.reads", "--output", str(output), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # 0: every target met; 1: one missed (likely in so short a run). Never 2 (could not run).
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done, json.loads(output.read_text())


def _check_stats(stats: dict[str, Any]) -> None:
    assert set(stats) >= STATS
    assert stats["rps"] > 0
    assert stats["requests"] > 0
    assert 0 < stats["p50_ms"] <= stats["p99_ms"]
    assert stats["statuses"] == {}, "every answer had the expected status"


@pytest.mark.slow
def test_tiny_sqlite_run_writes_the_report(tmp_path: Path) -> None:
    done, report = _run(
        tmp_path, "--backend", "sqlite", "--load", "python", "--seconds", "0.3", "--rounds", "2"
    )
    assert report["load_generator"] == "python"
    assert report["rounds"] == 2
    assert set(report["backends"]) == {"sqlite"}
    sqlite = report["backends"]["sqlite"]
    assert set(sqlite["reads"]) == {
        "GET /api/public/games/{id}",
        "GET /api/public/games?limit=20",
    }
    for row in sqlite["reads"].values():
        _check_stats(row["service"])
        _check_stats(row["service_cache_off"])
        _check_stats(row["plain"])
        assert len(row["ratio_rounds"]) == 2
        assert row["ratio"] > 0
        assert row["target"] == 1.0
        assert isinstance(row["met"], bool)
        # The miss path: a service process with READ_CACHE_ENTRIES=0, against the same plain app.
        off = row["cache_off"]
        assert len(off["ratio_rounds"]) == 2
        assert off["ratio"] > 0
        assert off["met"] is (off["ratio"] >= row["target"])
    _check_stats(sqlite["health"])
    rejection = sqlite["breaker_rejection"]
    _check_stats(rejection)
    assert rejection["target_p99_ratio"] == 1.1
    assert rejection["p99_ratio_to_health"] > 0
    assert sqlite["imports_to_open_breaker"] >= 1
    # "n/a" while the service sends no ETag; 304 rates against /health once it does.
    conditional = sqlite["conditional"]
    if conditional != "n/a":
        assert conditional
        for row in conditional.values():
            _check_stats(row)
            assert row["target"] == 0.8
    assert report["targets_met"] is (done.returncode == 0)
    assert "load: Python asyncio closed loop" in done.stdout
    assert "ratio service/plain" in done.stdout
    assert "ratio service, cache off/plain" in done.stdout
    assert "service, cache off GET /api/public/games/{id}" in done.stdout


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.reads", "--backend", "postgresql"],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs --database-url or TEST_DATABASE_URL" in done.stderr
