"""How long does each fault proxy toxic really take, next to what it was configured to take?

The proxy tests prove that a toxic holds or cuts the bytes (against toxics no test
outlives); the durations are measured here instead, where machine noise is reported rather
than failing a build. One asyncio loop runs an echo server, the proxy and the client; each
case is repeated and its median, minimum and maximum printed next to the configured figure.
Results also go to `reports/benchmarks/proxy_toxics.json`. Exit 1 if a toxic took less than
configured (it did not act), never for taking longer (that is the machine).

    python -m benchmarks.proxy_toxics [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks._service import REPO
from chaos.proxy import Latency, Proxy, Timeout, Toxic

Address = tuple[str, int]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(address: Address, payload: bytes) -> float:
    reader, writer = await asyncio.open_connection(*address)
    started = time.perf_counter()
    writer.write(payload)
    await reader.readexactly(len(payload))
    elapsed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    return elapsed


async def _stream_of_five(address: Address) -> float:
    """Five 10-byte writes 10 ms apart: done when the last is back."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.perf_counter()
    for index in range(5):
        writer.write(bytes([index]) * 10)
        await asyncio.sleep(0.01)
    await reader.readexactly(50)
    elapsed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    return elapsed


async def _until_closed(address: Address) -> float:
    """Send a few bytes; time until the proxy closes."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.perf_counter()
    writer.write(b"bye")
    while await reader.read(65536):
        pass
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed


@dataclass(frozen=True)
class Case:
    """One toxic, how to observe it, and what it should cost at least."""

    name: str
    toxics: tuple[Toxic, ...]
    measure: Callable[[Address], Awaitable[float]]
    configured_ms: float


CASES = (
    Case("no toxic, 4-byte round trip", (), lambda a: _round_trip(a, b"ping"), 0),
    Case("latency 120 ms", (Latency(latency=120),), lambda a: _round_trip(a, b"ping"), 120),
    Case(
        "latency 120 + upstream 60 ms",
        (Latency(latency=120), Latency(latency=60, direction="upstream")),
        lambda a: _round_trip(a, b"ping"),
        180,
    ),
    Case("latency 100 ms, five writes", (Latency(latency=100),), _stream_of_five, 100),
    Case("timeout 50 ms", (Timeout(timeout=50, direction="both"),), _until_closed, 50),
)


async def _measure(case: Case, repeat: int) -> list[float]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        async with Proxy(upstream=(str(host), int(port)), name="bench", seed=1) as proxy:
            for toxic in case.toxics:
                proxy.add_toxic(toxic)
            await case.measure(proxy.listen)  # warm-up
            return [await case.measure(proxy.listen) * 1000 for _ in range(repeat)]
    finally:
        server.close()
        await server.wait_closed()


async def _run(repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for case in CASES:
        samples = await _measure(case, repeat)
        rows.append(
            {
                "case": case.name,
                "configured_ms": case.configured_ms,
                "median_ms": round(statistics.median(samples), 2),
                "min_ms": round(min(samples), 2),
                "max_ms": round(max(samples), 2),
                # A 2 % allowance for how the loop rounds its timers.
                "acted": min(samples) >= case.configured_ms * 0.98,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every case; exit 1 if a toxic took less than configured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="runs of each case (default 20)")
    parser.add_argument(
        "--output", type=Path, default=REPO / "reports" / "benchmarks" / "proxy_toxics.json"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    rows = asyncio.run(_run(args.repeat))
    result = {
        "what": "fault proxy toxics: measured duration next to the configured one",
        "repeat": args.repeat,
        "cases": rows,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':32}{'configured':>11}{'median':>9}{'min':>9}{'max':>9}  (ms, {args.repeat} each)")
    for row in rows:
        cells = "".join(f"{row[k]:>9.1f}" for k in ("median_ms", "min_ms", "max_ms"))
        flag = "" if row["acted"] else "  did not act"
        print(f"{row['case']:32}{row['configured_ms']:>11.0f}{cells}{flag}")
    print(f"-> {args.output}")
    return 0 if all(row["acted"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
