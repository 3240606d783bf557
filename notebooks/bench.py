"""Does the failure analysis stay under 5 s on a million failure rows in PostgreSQL?

Creates a throw-away database `bench_nb_<random>` next to `--database-url` (default
`TEST_DATABASE_URL`), migrates it with `python -m system migrate`, seeds 10k / 100k / 1M
failure rows (and as many task runs) with `INSERT ... SELECT generate_series`, and times what
`failure_analysis.ipynb` runs: opening the tables (which validates every row) and
`analyse_failures` (every aggregate query). Prints a table and writes
`reports/benchmarks/notebooks_scale.json`; the database is dropped at the end, also on
Ctrl-C or SIGTERM. Exit 1 if the largest size misses the target.

    python -m notebooks.bench [--sizes 10000,100000,1000000] [--repeat 3] [--naive]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from notebooks.reliability.failures import analyse_failures
from notebooks.reliability.tables import open_tables

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 5.0
GAMES = 5000

# 90 days of failures ending 2026-11-30: mostly thumbnails, five error types with messages that
# carry ids and URLs, 96 % resolved (after seconds to days), 2 % with `resolved` NULL.
SEED_FAILURES = """
INSERT INTO background_task_failures
    (task_type, game_id, error_message, error_type, retry_count, url, resolved, resolved_at,
     created_at)
SELECT
    CASE WHEN g %% 10 = 0 THEN 'bgg_import' ELSE 'thumbnail_download' END,
    %(first_game)s + (g * 7919) %% %(games)s,
    CASE g %% 5
        WHEN 0 THEN 'Network error: ReadTimeout after ' || (g %% 97) || ' ms for https://cf.geekdo-images.com/pic' || g || '_t.jpg'
        WHEN 1 THEN 'Image CDN unavailable: circuit breaker open, retry in ' || (g %% 60) || ' s'
        WHEN 2 THEN 'CDN answered ' || (500 + g %% 4)
        WHEN 3 THEN 'Image not found (404) for game ' || (g %% 5000)
        ELSE 'Network error: ConnectError: All connection attempts failed'
    END,
    (ARRAY['ReadTimeout','CircuitBreakerOpen','CdnServerError','ImageNotFound','ConnectError'])[1 + g %% 5],
    1 + (g %% 3),
    'https://cf.geekdo-images.com/pic' || g || '_t.jpg',
    CASE WHEN g %% 50 = 0 THEN NULL WHEN g %% 25 = 0 THEN FALSE ELSE TRUE END,
    CASE WHEN g %% 25 <> 0
         THEN TIMESTAMP '2026-11-30' - (g * INTERVAL '7.776 seconds' * 1000000 / %(scale)s)
              + ((g * 7) %% 100000) * INTERVAL '1 second' END,
    TIMESTAMP '2026-11-30' - (g * INTERVAL '7.776 seconds' * 1000000 / %(scale)s)
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""  # noqa: E501

# As many runs: one in twenty a failed first run pointing at a failure, some retries.
SEED_RUNS = """
INSERT INTO background_task_runs
    (record_id, task_type, game_id, failure_id, outcome, attempts, "trigger", error_type,
     started_at, finished_at, duration_ms)
SELECT
    md5(g::text || 'run'),
    'thumbnail_download',
    %(first_game)s + (g * 104729) %% %(games)s,
    CASE WHEN g %% 20 IN (0, 1) THEN (SELECT min(id) FROM background_task_failures) + g / 20 END,
    CASE WHEN g %% 20 = 0 THEN 'failure' ELSE 'success' END,
    CASE WHEN g %% 20 = 0 THEN 3 ELSE 1 END,
    CASE WHEN g %% 20 = 1 THEN 'auto_retry' ELSE 'initial' END,
    CASE WHEN g %% 20 = 0 THEN 'ReadTimeout' END,
    TIMESTAMP '2026-11-30' - (g * INTERVAL '7.776 seconds' * 1000000 / %(scale)s),
    TIMESTAMP '2026-11-30' - (g * INTERVAL '7.776 seconds' * 1000000 / %(scale)s)
        + INTERVAL '40 milliseconds',
    40.0
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""


def _dsn(url: str) -> str:
    """A libpq connection string from a service URL (`postgresql+asyncpg://...`)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(base: str, sql: str) -> None:
    with psycopg.connect(_dsn(base), autocommit=True) as conn:
        conn.execute(sql.encode())


def _migrate(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "system", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"python -m system migrate failed: {result.stderr.strip()[-300:]}")


def _seed(url: str, have: int, want: int, scale: int) -> None:
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        if have == 0:
            conn.execute(
                "INSERT INTO boardgames (bgg_id, title, categories, mechanics, designers,"
                " publishers, created_at, updated_at)"
                " SELECT g, 'Game ' || g, '[]', '[]', '[]', '[]', now(), now()"
                " FROM generate_series(1, %(games)s) AS g",
                {"games": GAMES},
            )
        (first_game,) = conn.execute("SELECT min(id) FROM boardgames").fetchone() or (1,)
        params = {
            "start": have + 1,
            "stop": want,
            "scale": scale,
            "first_game": first_game,
            "games": GAMES,
        }
        conn.execute(SEED_FAILURES.encode(), params)
        conn.execute(SEED_RUNS.encode(), params)
        conn.execute(b"VACUUM ANALYZE background_task_failures")
        conn.execute(b"VACUUM ANALYZE background_task_runs")


def _time_once(url: str, *, workers: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    with open_tables(url, now="2026-11-30T00:00:00Z") as tables:
        opened = time.perf_counter() - started
        analysis = analyse_failures(tables, bucket="1d", workers=workers)
    total = time.perf_counter() - started
    return {
        "open_s": opened,
        "analysis_s": analysis.seconds,
        "total_s": total,
        "timings": analysis.timings,
        "failures": analysis.overview.failures,
    }


def _naive(url: str) -> float:
    """Reading every row into pandas (in chunks), for comparison."""
    started = time.perf_counter()
    with open_tables(url) as tables:
        tables.read_failures(limit=None)
    return time.perf_counter() - started


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m notebooks.bench", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size (median)")
    parser.add_argument("--naive", action="store_true", help="also time reading every row")
    parser.add_argument(
        "--output", type=Path, default=REPO / "reports" / "benchmarks" / "notebooks_scale.json"
    )
    args = parser.parse_args(argv)
    if not args.database_url or not args.database_url.startswith(("postgresql", "postgres:")):
        parser.error("needs --database-url or TEST_DATABASE_URL: postgresql+asyncpg://...")
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error("--sizes: comma-separated whole numbers")
    if not sizes or sizes[0] < 1 or args.repeat < 1:
        parser.error("--sizes and --repeat must be positive")

    signal.signal(signal.SIGTERM, _interrupted)
    name = f"bench_nb_{uuid.uuid4().hex[:8]}"
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    _admin(args.database_url, f'CREATE DATABASE "{name}"')
    results: list[dict[str, Any]] = []
    try:
        _migrate(url)
        have = 0
        for size in sizes:
            started = time.perf_counter()
            _seed(url, have, size, scale=sizes[-1])
            have = size
            print(f"seeded {size:>9,} failures and runs in {time.perf_counter() - started:5.1f} s")
            _time_once(url, workers=None)  # warm the caches once
            runs = [_time_once(url, workers=None) for _ in range(args.repeat)]
            sequential = _time_once(url, workers=1)
            row: dict[str, Any] = {
                "rows": size,
                "total_s": round(statistics.median(r["total_s"] for r in runs), 3),
                "open_s": round(statistics.median(r["open_s"] for r in runs), 3),
                "analysis_s": round(statistics.median(r["analysis_s"] for r in runs), 3),
                "max_total_s": round(max(r["total_s"] for r in runs), 3),
                "query_s_sequential": {k: round(v, 3) for k, v in sequential["timings"].items()},
            }
            if args.naive:
                row["naive_read_all_rows_s"] = round(_naive(url), 3)
            results.append(row)
    finally:
        _admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    naive = "  all rows into pandas s" if args.naive else ""
    print(f"\n{'rows':>10}  {'total s':>8}  {'open s':>7}  {'queries s':>9}  {'worst s':>7}{naive}")
    for row in results:
        extra = f"  {row['naive_read_all_rows_s']:>23.2f}" if args.naive else ""
        print(
            f"{row['rows']:>10,}  {row['total_s']:>8.2f}  {row['open_s']:>7.2f}"
            f"  {row['analysis_s']:>9.2f}  {row['max_total_s']:>7.2f}{extra}"
        )
    slowest = results[-1]["query_s_sequential"]
    print(
        "\nqueries one at a time at the largest size (s): "
        + ", ".join(f"{k} {v}" for k, v in slowest.items())
    )
    passed = results[-1]["total_s"] < TARGET_S
    machine = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "results": results,
                "target_s": TARGET_S,
                "passed": passed,
                "machine": machine,
                "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )
    print(
        f"\n{sizes[-1]:,} rows, failure analysis < {TARGET_S:g} s: {'PASS' if passed else 'FAIL'}"
        f" (written to {args.output})"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
