"""Do the service's public reads cost more than a plain FastAPI + SQLAlchemy app's?

For each backend (a SQLite file; PostgreSQL too when `--database-url` / `TEST_DATABASE_URL`
names a server, on a throw-away database next to the one it names), this starts the real
service (`python -m system serve`, one worker; its migrations make the tables), a second
service process with its cache of read answers off (`READ_CACHE_ENTRIES=0`), and the plain
app of `benchmarks/plain_app.py` (uvicorn, one worker) on the same database, seeds the same
games, and drives each with the same closed-loop load: `--connections` keep-alive HTTP/1.1
connections over loopback, each sending its next request as soon as the last one is
answered, for `--seconds` per phase. The rounds alternate the order of the apps, so all see
the same machine noise. It prints requests/s, p50 and p99 per endpoint, and the ratios
service/plain and service-with-the-cache-off/plain (medians of the rounds' ratios), next to
the targets of issue 14:

- every public read >= 1.0x the plain app (stretch 1.5x), with the cache and without it;
- conditional requests (`If-None-Match` with the `ETag` the service gave) answering `304`
  at >= 0.8x the requests/s of `GET /health` ("n/a" while the service sends no `ETag`);
- an import rejected by the open BGG breaker (`503`) at p99 <= 1.1x `/health`'s p99, both
  under the same load (the breaker opened as `benchmarks.breaker_rejection` does it, with
  `BGG_BREAKER_FAIL_MAX=1` and one import to a closed port).

Nothing writes during the load, so once warmed up the service answers its reads from the
answers each worker keeps for the current catalogue version (README, "Measured: reads"),
and the plain app, which keeps none, from the database: "service" compares the two designs
at that steady state. "service, cache off" answers every read as the service answers the
first read after a write (a cache miss): the version read, then the rows, rendered and
validated; its ratio is the cost of the miss path against the plain app.

The load generator is wrk when it is on PATH (`--load auto`, the default) and a Python
asyncio one otherwise (`--load python`); the output says which. Results also go to
`reports/benchmarks/reads.json`. Exit 0 when every target is met, 1 when one is missed or an
answer had an unexpected status, 2 when the benchmark could not run. With the Python load
generator, "client CPU" is the CPU the generator itself used per second (1.0 = a whole core):
near 1.0, the client rather than the app may be what limits the rate.

    python -m benchmarks.reads [--seconds 3] [--rounds 3] [--connections 10] [--games 300]
        [--backend sqlite|postgresql|both] [--load auto|python|wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks._service import REPO, Service, free_port, running_service
from benchmarks.breaker_rejection import breaker_env, open_breaker
from benchmarks.failures_listing import _admin
from benchmarks.plain_app import Game
from chaos.service import stop_group
from chaos.stats import percentile, rounded

ITEM = "GET /api/public/games/{id}"
#: The apps whose reads are measured: the service, a second service process with its read
#: cache off (every read a cache miss), and the plain app.
SERVICE, CACHE_OFF, PLAIN = "service", "service, cache off", "plain"
APPS = (SERVICE, CACHE_OFF, PLAIN)
PAGE = "GET /api/public/games?limit=20"
READS = (ITEM, PAGE)
#: Issue 14's targets.
TARGET_READ_RATIO = 1.0
STRETCH_READ_RATIO = 1.5
TARGET_CONDITIONAL_RATIO = 0.8
TARGET_REJECTION_P99_RATIO = 1.1


# --- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request of a phase's cycle."""

    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Phase:
    """What one load phase measured."""

    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int] = field(default_factory=Counter)
    #: Percentiles when the generator gives only those (wrk), else computed from latencies.
    p50_ms: float | None = None
    p99_ms: float | None = None
    #: CPU seconds the load generator used per second of the phase (Python generator only):
    #: near 1.0 means the client, not the app, may be what limits the rate.
    client_cpu: float | None = None

    @property
    def rps(self) -> float:
        """Answers per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _raw(request: Request, host: str) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    if request.method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _connection(
    host: str, port: int, raws: Sequence[bytes], start: int, deadline: float, phase: Phase
) -> None:
    """One closed-loop connection: send, read the whole answer, send the next, until deadline."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        i = start
        while True:
            sent = time.perf_counter()
            if sent >= deadline:
                return
            writer.write(raws[i % len(raws)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":  # none of the measured routes streams
                    raise RuntimeError(f"unexpected Transfer-Encoding: {value!r}")
            if length:
                await reader.readexactly(length)
            phase.latencies_ms.append((time.perf_counter() - sent) * 1000)
            phase.statuses[status] += 1
            phase.requests += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _python_phase(
    url: str, cycle: Sequence[Request], connections: int, seconds: float
) -> Phase:
    host_port = url.removeprefix("http://")
    host, port = host_port.rsplit(":", 1)
    raws = [_raw(r, host_port) for r in cycle]
    phase = Phase(requests=0, seconds=0.0, latencies_ms=[])
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    step = max(1, len(raws) // connections)
    # Bounded: a service that stops answering ends the run (TimeoutError), not hangs it.
    await asyncio.wait_for(
        asyncio.gather(
            *(
                _connection(host, int(port), raws, n * step, deadline, phase)
                for n in range(connections)
            )
        ),
        seconds + 30,
    )
    # Closed loop: the last answers arrive a little after the deadline; they count, and so
    # does the time they took.
    phase.seconds = time.perf_counter() - started
    phase.client_cpu = (time.process_time() - cpu) / phase.seconds
    return phase


def python_phase(
    url: str, cycle: Sequence[Request], connections: int, seconds: float, want: int
) -> Phase:
    """A closed-loop phase driven from this process (asyncio, uvloop when installed); every
    answer's status is counted (`want` is only for wrk's sake)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_python_phase(url, cycle, connections, seconds))
    return uvloop.run(_python_phase(url, cycle, connections, seconds))


_WRK_SCRIPT = """
local requests = {%s}
local n = 0
request = function()
  n = n + 1
  return requests[(n %% #requests) + 1]
end
done = function(summary, latency, requests)
  io.write(string.format("P50 %%.3f\\nP99 %%.3f\\n", latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_phase(
    url: str, cycle: Sequence[Request], connections: int, seconds: float, want: int
) -> Phase:
    """A phase driven by wrk (one thread).

    wrk tells only how many answers were not 2xx/3xx (a `response` callback would tell each
    status, but costs the client a parse of every answer): those count as status 0 when
    `want` is 2xx/3xx, the others as 1 when it is not. Which 2xx/3xx (200 or 304) is checked
    by `Backend.probe` before the phases.
    """
    entries = []
    for r in cycle:
        headers = "{" + ",".join(f"[{_lua_string(k)}]={_lua_string(v)}" for k, v in r.headers)
        entries.append(f"wrk.format({_lua_string(r.method)}, {_lua_string(r.path)}, {headers}}})")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % ",\n".join(entries))
    try:
        duration = max(1, round(seconds))  # wrk counts whole seconds
        output = subprocess.run(
            [
                shutil.which("wrk") or "/usr/bin/wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    p50 = re.search(r"^P50 ([\d.]+)", output, re.M)
    p99 = re.search(r"^P99 ([\d.]+)", output, re.M)
    if not (total and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    count = int(total.group(1))
    elapsed = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    bad = int(found.group(1)) if found else 0
    if want < 400:
        statuses = Counter({want: count - bad, 0: bad})
    else:
        statuses = Counter({want: bad, 1: count - bad})
    return Phase(count, elapsed, [], statuses, float(p50.group(1)), float(p99.group(1)))


# --- the apps ------------------------------------------------------------------------------


@contextmanager
def running_plain_app(database_url: str) -> Iterator[str]:
    """`benchmarks/plain_app.py` under uvicorn (one worker) on a free port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.plain_app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "error",
                "--no-access-log",
            ],
            cwd=REPO,
            env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            with httpx.Client(trust_env=False, timeout=2) as client:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{url}/api/public/games?limit=1").status_code == 200:
                            break
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"the plain app did not start: {log.read()[-500:]!r}")
                    time.sleep(0.05)
            yield url
        finally:
            stop_group(process, 15)


def _game_row(n: int, at: datetime) -> dict[str, Any]:
    """A plausible catalogue row (a real BGG game's size: a paragraph, a few lists)."""
    return {
        "bgg_id": 100_000 + n,
        "title": f"Game {n:04d}: {['Harbour', 'Orchard', 'Citadel', 'Expedition'][n % 4]}",
        "year_published": 1990 + n % 35,
        "min_players": 1 + n % 2,
        "max_players": 2 + n % 5,
        "playing_time": 30 + 15 * (n % 8),
        "min_age": 8 + n % 6,
        "description": "A game of planning and trading. " * 12,
        "thumbnail_url": f"https://cf.geekdo-images.com/thumb/pic{n}.jpg",
        "image_url": f"https://cf.geekdo-images.com/original/pic{n}.jpg",
        "thumbnail_path": None,
        "average_rating": 6.0 + (n % 30) / 10,
        "bayes_average": 5.5 + (n % 25) / 10,
        "bgg_rank": n + 1,
        "categories": ["Economic", "Territory Building"],
        "mechanics": ["Hand Management", "Tile Placement", "Worker Placement"],
        "designers": [f"Designer {n % 40}"],
        "publishers": [f"Publisher {n % 25}", "Some Distributor"],
        "is_expansion": n % 10 == 0,
        "created_at": at + timedelta(seconds=n),
        "updated_at": at + timedelta(seconds=n),
    }


async def _seed(database_url: str, games: int) -> list[int]:
    """Insert `games` rows through the plain app's mapping; return every game id."""
    engine = create_async_engine(database_url)
    try:
        at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        async with engine.begin() as conn:
            await conn.execute(insert(Game), [_game_row(n, at) for n in range(games)])
            ids = list((await conn.scalars(select(Game.id).order_by(Game.id))).all())
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE boardgames")
        return ids
    finally:
        await engine.dispose()


@contextmanager
def database(backend: str, server_url: str | None) -> Iterator[str]:
    """A throw-away database of `backend`; yields its URL and drops it afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/reads.db"
        return
    assert server_url is not None
    name = f"bench_reads_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- the run -------------------------------------------------------------------------------


def _stats(phases: list[Phase]) -> dict[str, Any]:
    """Requests/s (median of the rounds), p50/p99 (ms) and statuses of one kind of phase."""
    latencies = [ms for p in phases for ms in p.latencies_ms]
    if latencies:
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    else:  # wrk: the median of the rounds' percentiles
        p50 = statistics.median(p.p50_ms or 0.0 for p in phases)
        p99 = statistics.median(p.p99_ms or 0.0 for p in phases)
    statuses: Counter[int] = Counter()
    for p in phases:
        statuses.update(p.statuses)
    cpu = [p.client_cpu for p in phases if p.client_cpu is not None]
    return {
        "rps": round(statistics.median(p.rps for p in phases), 1),
        "rps_rounds": [round(p.rps, 1) for p in phases],
        "p50_ms": rounded(p50, 3),
        "p99_ms": rounded(p99, 3),
        "requests": sum(p.requests for p in phases),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "client_cpu": round(statistics.median(cpu), 2) if cpu else None,
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def _ratios(apps: list[Phase], plain: list[Phase]) -> list[float]:
    """Each round's requests/s ratio of an app to the plain app."""
    return [_ratio(a.rps, p.rps) for a, p in zip(apps, plain, strict=True)]


class Backend:
    """One backend's two apps, their request cycles and what the rounds measured."""

    def __init__(
        self, name: str, service: Service, cache_off_url: str, plain_url: str, ids: list[int]
    ) -> None:
        self.name = name
        self.service = service
        self.urls = {SERVICE: service.url, CACHE_OFF: cache_off_url, PLAIN: plain_url}
        item_cycle = [Request(f"/api/public/games/{i}") for i in ids]
        self.reads = {ITEM: item_cycle, PAGE: [Request("/api/public/games?limit=20")]}
        auth = (("Authorization", f"Bearer {service.token}"),)
        self.service_only: dict[str, tuple[list[Request], int]] = {
            "GET /health": ([Request("/health")], 200),
            "breaker rejection": (
                [Request(f"/api/admin/games/import/{13 + n}", "POST", auth) for n in range(50)],
                503,
            ),
        }
        self.conditional: dict[str, list[Request]] = {}
        self.phases: dict[str, list[Phase]] = {}

    def probe(self) -> None:
        """Check every route answers as expected; collect `ETag`s for conditional requests."""
        with httpx.Client(trust_env=False, timeout=10) as client:
            for label, cycle in self.reads.items():
                for app, url in self.urls.items():
                    answer = client.get(url + cycle[0].path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{app} {label}: {answer.status_code} {answer.text}")
                cached, uncached = (
                    client.get(self.urls[app] + cycle[0].path) for app in (SERVICE, CACHE_OFF)
                )
                if (cached.content, cached.headers.get("etag")) != (
                    uncached.content,
                    uncached.headers.get("etag"),
                ):
                    raise RuntimeError(f"{label}: the cache off answers otherwise than the cache")
            for label, (cycle, want) in self.service_only.items():
                r = cycle[0]
                answer = client.request(
                    r.method, self.service.url + r.path, headers=dict(r.headers)
                )
                if answer.status_code != want:
                    raise RuntimeError(f"service {label}: {answer.status_code}, want {want}")
            for label, cycle in self.reads.items():
                conditional = []
                for r in cycle[:50]:
                    etag = client.get(self.service.url + r.path).headers.get("etag")
                    if etag is None:
                        break
                    conditional.append(Request(r.path, headers=(("If-None-Match", etag),)))
                else:
                    self.conditional[f"{label}, If-None-Match"] = conditional

    def round(self, number: int, run: Any, connections: int, seconds: float) -> None:
        """One phase of each kind; the app that goes first alternates between rounds."""
        order = list(APPS) if number % 2 == 0 else list(reversed(APPS))
        kinds: list[tuple[str, str, list[Request], int]] = []
        for label, cycle in self.reads.items():
            kinds += [(f"{app} {label}", self.urls[app], cycle, 200) for app in order]
        for label, (cycle, want) in self.service_only.items():
            kinds.append((f"service {label}", self.service.url, cycle, want))
        for label, cycle in self.conditional.items():
            kinds.append((f"service {label}", self.service.url, cycle, 304))
        for key, url, cycle, want in kinds:
            phase = run(url, cycle, connections, seconds, want)
            # Only the statuses that were not expected are kept (the JSON's `statuses`).
            phase.statuses = Counter({k: v for k, v in phase.statuses.items() if k != want and v})
            self.phases.setdefault(key, []).append(phase)
            unexpected = f"  unexpected: {dict(phase.statuses)}" if phase.statuses else ""
            print(
                f"  [{self.name} round {number + 1}] {key:<62}{phase.rps:>8.0f} req/s{unexpected}",
                flush=True,
            )

    def report(self) -> dict[str, Any]:
        """Stats, ratios and targets of this backend."""
        reads: dict[str, Any] = {}
        for label in READS:
            service, cache_off, plain = (self.phases[f"{app} {label}"] for app in APPS)
            ratios = _ratios(service, plain)
            ratio = round(statistics.median(ratios), 2)
            off_ratios = _ratios(cache_off, plain)
            off_ratio = round(statistics.median(off_ratios), 2)
            reads[label] = {
                "service": _stats(service),
                "service_cache_off": _stats(cache_off),
                "plain": _stats(plain),
                "ratio": ratio,
                "ratio_rounds": ratios,
                "target": TARGET_READ_RATIO,
                "stretch": STRETCH_READ_RATIO,
                "met": ratio >= TARGET_READ_RATIO,
                # Every read a cache miss (READ_CACHE_ENTRIES=0): the first read after a write.
                "cache_off": {
                    "ratio": off_ratio,
                    "ratio_rounds": off_ratios,
                    "met": off_ratio >= TARGET_READ_RATIO,
                },
            }
        health = _stats(self.phases["service GET /health"])
        rejection = _stats(self.phases["service breaker rejection"])
        p99_ratio = _ratio(rejection["p99_ms"], health["p99_ms"])
        conditional: dict[str, Any] | str = "n/a"
        if self.conditional:
            conditional = {}
            for label in self.conditional:
                stats = _stats(self.phases[f"service {label}"])
                ratio = _ratio(stats["rps"], health["rps"])
                conditional[label] = {
                    **stats,
                    "ratio_to_health": ratio,
                    "target": TARGET_CONDITIONAL_RATIO,
                    "met": ratio >= TARGET_CONDITIONAL_RATIO and not stats["statuses"],
                }
        return {
            "reads": reads,
            "health": health,
            "breaker_rejection": {
                **rejection,
                "p99_ratio_to_health": p99_ratio,
                "median_ratio_to_health": _ratio(rejection["p50_ms"], health["p50_ms"]),
                "target_p99_ratio": TARGET_REJECTION_P99_RATIO,
                "met": p99_ratio <= TARGET_REJECTION_P99_RATIO,
            },
            "conditional": conditional,
        }


def _mark(met: bool) -> str:
    return "ok" if met else "MISSED"


def _row(label: str, s: dict[str, Any]) -> str:
    cpu = "" if s["client_cpu"] is None else f"{s['client_cpu']:>12.2f}"
    return f"  {label:<60}{s['rps']:>9.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{cpu}"


def _print_backend(name: str, report: dict[str, Any]) -> None:
    cpu = "client CPU" if report["health"]["client_cpu"] is not None else ""
    print(f"\n{name + ':':<62}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{cpu:>12}".rstrip())
    for label, row in report["reads"].items():
        for app, key in zip(APPS, ("service", "service_cache_off", "plain"), strict=True):
            print(_row(f"{app} {label}", row[key]))
        off = row["cache_off"]
        for what, ratio, met in (
            ("service/plain", row["ratio"], row["met"]),
            ("service, cache off/plain", off["ratio"], off["met"]),
        ):
            print(
                f"  {'  ratio ' + what:<60}{ratio:>8.2f}x   target >= {row['target']}x"
                f" (stretch {row['stretch']}x): {_mark(met)}"
            )
    h, r = report["health"], report["breaker_rejection"]
    print(_row("service GET /health", h))
    print(_row("service breaker rejection (503)", r))
    print(
        f"  {'  rejection p99 / health p99':<60}{r['p99_ratio_to_health']:>8.2f}x"
        f"   target <= {r['target_p99_ratio']}x: {_mark(r['met'])}"
    )
    if report["conditional"] == "n/a":
        print(f"  {'conditional 304s':<60}{'n/a':>9}   (the service sends no ETag)")
        return
    for label, c in report["conditional"].items():
        print(_row(f"service {label}", c))
        print(
            f"  {'  304 req/s / health req/s':<60}{c['ratio_to_health']:>8.2f}x"
            f"   target >= {c['target']}x: {_mark(c['met'])}"
        )


def _targets_met(report: dict[str, Any]) -> bool:
    met = [row["met"] for row in report["reads"].values()]
    met += [row["cache_off"]["met"] for row in report["reads"].values()]
    met.append(report["breaker_rejection"]["met"])
    if isinstance(report["conditional"], dict):
        met += [c["met"] for c in report["conditional"].values()]
    return all(met)


def _unexpected(report: dict[str, Any]) -> bool:
    apps = ("service", "service_cache_off", "plain")
    rows = [row[app] for row in report["reads"].values() for app in apps]
    rows += [report["health"], report["breaker_rejection"]]
    return any(row["statuses"] for row in rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="default 3")
    parser.add_argument("--connections", type=int, default=10, help="default 10")
    parser.add_argument("--games", type=int, default=300, help="seeded games (default 300)")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql", "both"],
        help="default: both when a PostgreSQL URL is given, else sqlite",
    )
    parser.add_argument("--load", choices=["auto", "python", "wrk"], default="auto")
    parser.add_argument(
        "--output", type=Path, default=REPO / "reports" / "benchmarks" / "reads.json"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.connections < 1 or args.games < 20:
        parser.error("--seconds > 0, --rounds >= 1, --connections >= 1, --games >= 20")
    pg_url = args.database_url if args.database_url else None
    if pg_url and not pg_url.startswith("postgresql+asyncpg://"):
        parser.error("--database-url / TEST_DATABASE_URL: postgresql+asyncpg://...")
    backend = args.backend or ("both" if pg_url else "sqlite")
    backends = ["sqlite", "postgresql"] if backend == "both" else [backend]
    if "postgresql" in backends and not pg_url:
        parser.error("postgresql needs --database-url or TEST_DATABASE_URL")
    wrk = shutil.which("wrk")
    if args.load == "wrk" and not wrk:
        parser.error("--load wrk: wrk is not on PATH")
    use_wrk = args.load == "wrk" or (args.load == "auto" and wrk is not None)
    run = wrk_phase if use_wrk else python_phase
    seconds = max(1.0, round(args.seconds)) if use_wrk else args.seconds
    load = (
        f"wrk ({wrk}), 1 thread" if use_wrk else "Python asyncio closed loop (raw HTTP/1.1)"
    ) + f", {args.connections} keep-alive connections, {seconds:g} s per phase"

    # A SIGTERM (a timeout, a CI cancel) still stops the apps and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    phases_per_round = 10  # 2 reads x 3 apps, /health, rejection, up to 2 conditional
    budget = len(backends) * args.rounds * phases_per_round * (seconds + 0.2)
    print(f"load: {load}")
    print(
        f"backends: {', '.join(backends)}; about {budget:.0f} s of load plus start-up", flush=True
    )
    reports: dict[str, Any] = {}
    try:
        for name in backends:
            with ExitStack() as stack:
                url = stack.enter_context(database(name, pg_url))
                env = {**breaker_env(fail_max=1), "DATABASE_URL": url}
                service = stack.enter_context(running_service(env))
                # Started after the first, whose migrations it then finds done.
                cache_off = stack.enter_context(running_service({**env, "READ_CACHE_ENTRIES": "0"}))
                ids = asyncio.run(_seed(url, args.games))
                plain = stack.enter_context(running_plain_app(url))
                headers = {"Authorization": f"Bearer {service.token}"}
                with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client:
                    imports_to_open = open_breaker(client)
                bench = Backend(name, service, cache_off.url, plain, ids)
                bench.probe()
                print(
                    f"{name}: {len(ids)} games, breaker open after {imports_to_open} import(s), "
                    f"ETag: {'yes' if bench.conditional else 'no'}; warming up",
                    flush=True,
                )
                bench.round(0, run, args.connections, min(1.0, seconds))  # warm-up, dropped
                bench.phases.clear()
                for number in range(args.rounds):
                    bench.round(number, run, args.connections, seconds)
                reports[name] = {"imports_to_open_breaker": imports_to_open, **bench.report()}
    except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    met = all(_targets_met(r) for r in reports.values())
    unexpected = any(_unexpected(r) for r in reports.values())
    result: dict[str, Any] = {
        "what": "public reads of the service, with its read cache and without it "
        "(READ_CACHE_ENTRIES=0: every read a cache miss), vs a plain FastAPI + SQLAlchemy app "
        "on the same database and load; /health, the open-breaker rejection and conditional "
        "requests",
        "load": load,
        "load_generator": "wrk" if use_wrk else "python",
        "connections": args.connections,
        "seconds_per_phase": seconds,
        "rounds": args.rounds,
        "games": args.games,
        "service_workers": 1,
        "backends": reports,
        "targets": {
            "read_ratio": TARGET_READ_RATIO,
            "read_ratio_stretch": STRETCH_READ_RATIO,
            "conditional_ratio_to_health": TARGET_CONDITIONAL_RATIO,
            "rejection_p99_ratio_to_health": TARGET_REJECTION_P99_RATIO,
        },
        "targets_met": met,
        "unexpected_statuses": unexpected,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    over = "the rounds' median" if use_wrk else "over all answers"
    print(f"\nload: {load}\nreq/s: the median of {args.rounds} round(s); p50/p99: {over}")
    for name, report in reports.items():
        _print_backend(name, report)
    if unexpected:
        print("\nsome answers had an unexpected status (see `statuses` in the JSON)")
    print(f"\nevery target met: {'yes' if met else 'no'}  -> {args.output}")
    return 1 if unexpected or not met else 0


if __name__ == "__main__":
    sys.exit(main())
