"""Does `GET /api/admin/monitoring/background-failures` stay fast as the table grows?

Seeds 10k, 100k and 1M failure rows into a throw-away PostgreSQL database (next to the one
`--database-url` / `TEST_DATABASE_URL` names), starts the real service on it, and times the
endpoint with the queries an operator makes (no filter, unresolved only, one task type, a
time window, the second page). Prints median and p95 per size and query, shows the query
plan of the unfiltered listing, and writes `reports/benchmarks/failures_listing.json`.

    python -m benchmarks.failures_listing [--sizes 10000,100000,1000000] [--requests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks._service import REPO, running_service
from chaos.stats import percentile, rounded

QUERIES: dict[str, dict[str, str]] = {
    "no filter": {},
    "resolved=false": {"resolved": "false"},
    "task_type=bgg_import": {"task_type": "bgg_import"},
    "last 24 h": {"since": "2026-11-29T00:00:00Z"},
    "limit=500": {"limit": "500"},
}

# 90 days of failures, mostly thumbnails, 1 in 100 unresolved (as an operator would keep it).
SEED_SQL = """
INSERT INTO background_task_failures
    (task_type, game_id, error_message, error_type, retry_count, url, resolved, resolved_at,
     created_at)
SELECT
    CASE WHEN g % 10 = 0 THEN 'bgg_import' ELSE 'thumbnail_download' END,
    NULL,
    'Network error: Connection timeout',
    (ARRAY['ReadTimeout','ConnectError','CdnServerError','ImageNotFound'])[1 + g % 4],
    3,
    'https://cf.geekdo-images.com/pic' || g || '.jpg',
    g % 100 <> 0,
    CASE WHEN g % 100 <> 0
         THEN TIMESTAMP '2026-11-30' - (g * INTERVAL '7.776 seconds') + INTERVAL '1 hour' END,
    TIMESTAMP '2026-11-30' - (g * INTERVAL '7.776 seconds' * 1000000 / $2)
FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS g
"""


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(server))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seed(url: str, have: int, want: int) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(SEED_SQL, have, want - have)
        await conn.execute("VACUUM ANALYZE background_task_failures")
    finally:
        await conn.close()


async def _explain(url: str, sql: str) -> str:
    conn = await asyncpg.connect(_dsn(url))
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS OFF) " + sql)
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


def _time(client: httpx.Client, params: dict[str, str], n: int) -> list[float]:
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get("/api/admin/monitoring/background-failures", params=params)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return timings


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a 1M-row median misses 50 ms."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--output", type=Path, default=REPO / "reports" / "benchmarks" / "failures_listing.json"
    )
    args = parser.parse_args(argv)
    if not args.database_url or not args.database_url.startswith("postgresql+asyncpg://"):
        parser.error("needs --database-url or TEST_DATABASE_URL: postgresql+asyncpg://...")
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error("--sizes: comma-separated whole numbers")

    # A SIGTERM (a timeout, a CI cancel) still drops the throw-away database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = f"bench_failures_{uuid.uuid4().hex[:8]}"
    base = args.database_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    results: list[dict[str, Any]] = []
    try:
        with running_service({"DATABASE_URL": url}) as service:
            headers = {"Authorization": f"Bearer {service.token}"}
            have = 0
            for size in sizes:
                started = time.perf_counter()
                asyncio.run(_seed(url, have, size))
                have = size
                print(f"seeded {size:>9,} rows in {time.perf_counter() - started:5.1f} s")
                with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
                    first = client.get("/api/admin/monitoring/background-failures").json()
                    cursor = first["next_cursor"]
                    queries = dict(QUERIES, **{"second page": {"cursor": cursor}})
                    for label, params in queries.items():
                        _time(client, params, 3)  # warm caches
                        timings = _time(client, params, args.requests)
                        results.append(
                            {
                                "rows": size,
                                "query": label,
                                "median_ms": round(statistics.median(timings), 2),
                                "p95_ms": rounded(percentile(timings, 95)),
                            }
                        )
            # One branch of the unfiltered listing: an index range scan, not a sort of the table.
            plan = asyncio.run(
                _explain(
                    url,
                    "SELECT id FROM background_task_failures WHERE resolved = true"
                    " ORDER BY created_at DESC, id DESC LIMIT 51",
                )
            )
    finally:
        asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    print(f"\n{'rows':>10}  {'query':<22}{'median ms':>10}{'p95 ms':>10}")
    for row in results:
        print(
            f"{row['rows']:>10,}  {row['query']:<22}{row['median_ms']:>10.2f}{row['p95_ms']:>10.2f}"
        )
    print("\nplan of one branch of the unfiltered listing:\n" + plan)
    # The target is for a page of the default size; `limit=500` shows what ten times the
    # rows cost to serialise (it does not grow with the table).
    largest = [r for r in results if r["rows"] == sizes[-1] and r["query"] != "limit=500"]
    passed = all(r["median_ms"] < 50 for r in largest)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"results": results, "target_median_ms": 50, "passed": passed}, indent=2)
    )
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{sizes[-1]:,} rows, every default-page median < 50 ms: {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
