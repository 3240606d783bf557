"""Do big BGG answers slow everyone else down?

Starts the fake BGG (`python -m chaos.fakes bgg`) with one game whose `thing` answer is about
4.9 MB (thousands of nested `boardgameversion` items, as real answers with many versions
have), and the real service on loopback. Then, in rounds, times `GET /health` and a public
search interleaved (so both see the same machine noise): once alone, once while ten admin
imports of the big game run at a time without pause. Prints median, p95 and p99 of each and
writes everything to `reports/benchmarks/big_answers.json`.

`--mode` says where the service parses (`BGG_PARSE_PROCESSES`): `thread` (0) or `process`
(1), or `both` (the default): one service of each runs side by side and the rounds alternate
between them, so both modes see the same machine noise.

    python -m benchmarks.big_answers [--mode both] [--requests 400] [--rounds 3] [--imports 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks._service import REPO, Service, running_service
from benchmarks.breaker_rejection import summarise
from chaos.fakes import FakeControl, FaultRule
from chaos.fakes.bgg import synthetic_item
from chaos.stats import percentile

BIG_ID = 777_777
#: Under the parser's 5,000,000-byte cap, like the 4.9 MB answers that stalled the service.
BIG_BYTES = 4_900_000
SMALL_IDS = range(1, 21)
#: `BGG_PARSE_PROCESSES` of each mode.
MODES = {"thread": "0", "process": "1"}

_VERSION = (
    '<item type="boardgameversion" id="{n}"><thumbnail>https://cf.geekdo-images.com/v{n}.jpg'
    '</thumbnail><name type="primary" sortindex="1" value="Version {n}: a printing with a name" />'
    '<link type="boardgameversion" id="{n}" value="Version {n}" inbound="true" />'
    '<link type="language" id="2184" value="English" /><yearpublished value="2020" />'
    '<width value="0" /><depth value="0" /><weight value="0" /></item>'
)


def big_thing(bgg_id: int = BIG_ID, size: int = BIG_BYTES) -> str:
    """A well-formed `thing` answer for `bgg_id` of about `size` bytes."""
    item = synthetic_item(bgg_id, stats=True, cdn_base_url="https://cf.geekdo-images.com")
    head = f'<?xml version="1.0" encoding="utf-8"?><items termsofuse="x">{item[: -len("</item>")]}'
    tail = "</versions></item></items>"
    versions: list[str] = []
    total = len(head) + len("<versions>") + len(tail)
    n = 1
    while total < size:
        version = _VERSION.format(n=n)
        versions.append(version)
        total += len(version)
        n += 1
    return head + "<versions>" + "".join(versions) + tail


@contextmanager
def fake_bgg() -> Iterator[str]:
    """`python -m chaos.fakes bgg` on a free port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos.fakes", "bgg", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if " listening on " not in line:
            raise RuntimeError(f"the fake BGG did not start: {line!r}")
        yield line.split(" listening on ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.wait(10)


def _probe(client: httpx.Client, requests: int) -> tuple[list[float], list[float]]:
    """`requests` each of /health and a public search, interleaved; times in ms."""
    health: list[float] = []
    public: list[float] = []
    for i in range(requests):
        started = time.perf_counter()
        client.get("/health").raise_for_status()
        health.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        client.get("/api/public/games", params={"q": "e", "offset": i % 5}).raise_for_status()
        public.append((time.perf_counter() - started) * 1000)
    return health, public


class BigImports:
    """`imports` threads each importing the big game again and again until stopped."""

    def __init__(self, url: str, token: str, imports: int) -> None:
        self.url, self.token, self.imports = url, token, imports
        self.stop = threading.Event()
        self.done = 0
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(imports)]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            while not self.stop.is_set():
                status = client.post(f"/api/admin/games/import/{BIG_ID}").status_code
                with self._lock:
                    self.done += 1
                    self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self) -> BigImports:
        for thread in self._threads:
            thread.start()
        while self.done < self.imports:  # every thread has had its first answer: warm
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(120)


def _table(rows: dict[str, dict[str, float]], requests: int) -> str:
    lines = [f"{'':34}{'median':>9}{'p95':>9}{'p99':>9}{'max':>9}  (ms, {requests} each)"]
    for name, row in rows.items():
        cells = (row[k] for k in ("median_ms", "p95_ms", "p99_ms", "max_ms"))
        lines.append(f"{name:34}" + "".join(f"{cell:>9.2f}" for cell in cells))
    return "\n".join(lines)


def _prepare(service: Service) -> None:
    """A catalogue to search, the big game imported once, connections warm."""
    headers = {"Authorization": f"Bearer {service.token}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        for bgg_id in SMALL_IDS:
            client.post(f"/api/admin/games/import/{bgg_id}").raise_for_status()
        big = client.post(f"/api/admin/games/import/{BIG_ID}")
        if big.status_code not in (200, 201):
            raise RuntimeError(f"the big import failed: {big.text}")
        _probe(client, 50)


class _Samples:
    """One mode's timings and the statuses of its big imports."""

    def __init__(self) -> None:
        self.alone: dict[str, list[float]] = {"health": [], "public": []}
        self.loaded: dict[str, list[float]] = {"health": [], "public": []}
        self.imports: dict[int, int] = {}

    def round(self, service: Service, requests: int, imports: int) -> None:
        """One alone phase, then one loaded phase."""
        with httpx.Client(base_url=service.url, timeout=60) as client:
            health, public = _probe(client, requests)
            self.alone["health"] += health
            self.alone["public"] += public
            with BigImports(service.url, service.token, imports) as running:
                health, public = _probe(client, requests)
            self.loaded["health"] += health
            self.loaded["public"] += public
        for status, count in running.statuses.items():
            self.imports[status] = self.imports.get(status, 0) + count

    def report(self, imports: int) -> dict[str, Any]:
        """Rows and ratios of this mode."""
        alone, loaded = self.alone, self.loaded
        loaded_p99, alone_p99 = percentile(loaded["public"], 99), percentile(alone["public"], 99)
        assert loaded_p99 is not None and alone_p99 is not None, "no samples"
        return {
            "imports_answered": self.imports,
            "results": {
                "GET /health, alone": summarise(alone["health"]),
                f"GET /health, {imports} big imports": summarise(loaded["health"]),
                "GET /api/public/games, alone": summarise(alone["public"]),
                f"GET /api/public/games, {imports} big": summarise(loaded["public"]),
            },
            "public_p99_ratio": round(loaded_p99 / alone_p99, 2),
            "public_median_ratio": round(
                statistics.median(loaded["public"]) / statistics.median(alone["public"]), 2
            ),
        }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--mode", choices=[*MODES, "both"], default="both", help="where the service parses"
    )
    parser.add_argument("--requests", type=int, default=400, help="per kind and phase")
    parser.add_argument("--rounds", type=int, default=3, help="alone/loaded pairs (default 3)")
    parser.add_argument("--imports", type=int, default=10, help="big imports at a time")
    parser.add_argument(
        "--output", type=Path, default=REPO / "reports" / "benchmarks" / "big_answers.json"
    )
    args = parser.parse_args(argv)
    if args.requests < 10 or args.rounds < 1 or args.imports < 1:
        parser.error("--requests >= 10, --rounds >= 1 and --imports >= 1")
    modes = list(MODES) if args.mode == "both" else [args.mode]

    document = big_thing()
    samples = {mode: _Samples() for mode in modes}
    with fake_bgg() as bgg_url:
        with FakeControl(bgg_url) as control:
            rule = FaultRule(
                path="/thing",
                match={"id": str(BIG_ID)},
                text=document,
                content_type="text/xml; charset=utf-8",
            )
            control.set_faults([rule])
        with ExitStack() as stack:
            services: dict[str, Service] = {}
            for mode in modes:
                env = {
                    "BGG_BASE_URL": f"{bgg_url}/xmlapi2",
                    "IMAGE_ALLOWED_HOSTS": "images.invalid",
                    "BGG_PARSE_PROCESSES": MODES[mode],
                }
                services[mode] = stack.enter_context(running_service(env))
                try:
                    _prepare(services[mode])
                except RuntimeError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
            for _ in range(args.rounds):
                for mode in modes:
                    samples[mode].round(services[mode], args.requests, args.imports)

    result: dict[str, Any] = {
        "what": "GET /health and a public search, alone and during concurrent big BGG imports, "
        "with the answer parsed in a thread (BGG_PARSE_PROCESSES=0) or a child process (1)",
        "answer_bytes": len(document.encode()),
        "concurrent_imports": args.imports,
        "requests_each": args.requests * args.rounds,
        "rounds": args.rounds,
        "modes": {mode: samples[mode].report(args.imports) for mode in modes},
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for mode in modes:
        report = result["modes"][mode]
        print(f"parse in a {mode} (BGG_PARSE_PROCESSES={MODES[mode]}):")
        print(_table(report["results"], args.requests * args.rounds))
        print(f"  big imports answered during the loaded phases: {report['imports_answered']}")
        print(
            f"  public search loaded/alone: median {report['public_median_ratio']}x, "
            f"p99 {report['public_p99_ratio']}x"
        )
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
