"""cdn_slow: the image CDN answers, but 1.5 s late, longer than a download attempt may take.

Promises: as for cdn_outage, with timeouts: each download times out on each of its 3
attempts (`THUMBNAIL_TIMEOUT`, 0.5 s as the harness sets it) or is rejected by the open
Image CDN breaker, leaves exactly one failure row, and the BGG breaker is untouched; once the
CDN is fast again, the automatic retry resolves the failures.
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.proxy import Latency
from chaos.scenarios import common, thumbnails

IMPORTS = 6
LATENCY_MS = 1500


async def cdn_slow(ctx: Context) -> dict[str, Any]:
    """Every byte from the CDN arrives 1.5 s late."""
    ctx.proxies.add_toxic("cdn", Latency(name="slow", direction="downstream", latency=LATENCY_MS))
    ctx.fault("cdn-latency", True, proxy="cdn", latency_ms=LATENCY_MS)
    return {"latency_ms": LATENCY_MS}


async def imports_go_on(ctx: Context) -> dict[str, Any]:
    """Imports while the CDN is slow."""
    return await thumbnails.imports_unaffected(ctx, IMPORTS)


async def cdn_fast(ctx: Context) -> dict[str, Any]:
    """The CDN is fast again."""
    ctx.proxies.clear_toxics("cdn")
    ctx.fault("cdn-latency", False, proxy="cdn")
    return {"latency_ms": 0}


SCENARIO = Scenario(
    name="cdn_slow",
    title="The image CDN is slow: downloads time out 3 times, fail once each, then retried",
    fault=f"the TCP proxy delays everything the CDN sends by {LATENCY_MS} ms",
    description=__doc__ or "",
    tags=("cdn", "thumbnails", "timeouts", "recovery"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("cdn-slow", cdn_slow),
        thumbnails.THREE_ATTEMPTS,
        probe(
            thumbnails.IMPORTS_UNAFFECTED,
            imports_go_on,
            equals(True, "all_created"),
            promise="imports keep working while the CDN is slow",
        ),
        thumbnails.ONE_ROW_EACH,
        thumbnails.BGG_UNTOUCHED,
        action("cdn-fast", cdn_fast),
        thumbnails.AUTO_RETRY,
    ),
    rollbacks=(common.RESTORE,),
)
