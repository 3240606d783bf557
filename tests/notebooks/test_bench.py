"""The scale benchmark on a throw-away PostgreSQL database (tiny sizes here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from notebooks import bench
from tests.services import missing


@pytest.mark.postgres
@pytest.mark.slow
def test_the_benchmark_runs_and_drops_its_database(tmp_path: Path) -> None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        missing("TEST_DATABASE_URL not set")
    assert url is not None
    output = tmp_path / "scale.json"
    code = bench.main(
        ["--database-url", url, "--sizes", "300,1000", "--repeat", "1", "--output", str(output)]
    )
    assert code == 0
    report = json.loads(output.read_text())
    assert [r["rows"] for r in report["results"]] == [300, 1000]
    assert report["passed"] is True
    assert set(report["results"][0]["query_s_sequential"]) >= {"over_time", "resolution"}
    with psycopg.connect(bench._dsn(url)) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_nb_%'")
        assert left.fetchall() == []
