"""cdn_outage: the image CDN refuses connections, then comes back.

Promises: imports go on (BGG is fine); each thumbnail download fails after the spec's 3
attempts (or at once, `CircuitBreakerOpen`, once the Image CDN breaker has opened) and leaves
exactly one failure row; the BGG breaker is untouched; after recovery the service's
automatic retry (the monitoring issue) resolves every one of those failures by itself.
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.scenarios import common, thumbnails

IMPORTS = 8


async def cdn_down(ctx: Context) -> dict[str, Any]:
    """The proxy in front of the CDN stops listening: connections are refused."""
    ctx.proxies.down("cdn")
    ctx.fault("cdn-refused", True, proxy="cdn")
    return {"proxy": "cdn", "enabled": False}


async def imports_go_on(ctx: Context) -> dict[str, Any]:
    """Imports while the CDN is down."""
    return await thumbnails.imports_unaffected(ctx, IMPORTS)


async def cdn_up(ctx: Context) -> dict[str, Any]:
    """The CDN accepts connections again."""
    ctx.proxies.up("cdn")
    ctx.fault("cdn-refused", False, proxy="cdn")
    return {"proxy": "cdn", "enabled": True}


SCENARIO = Scenario(
    name="cdn_outage",
    title="The image CDN is down: thumbnails fail once each, BGG is untouched, then retried",
    fault="the TCP proxy in front of the CDN refuses connections",
    description=__doc__ or "",
    tags=("cdn", "thumbnails", "recovery"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("cdn-down", cdn_down),
        thumbnails.THREE_ATTEMPTS,
        probe(
            thumbnails.IMPORTS_UNAFFECTED,
            imports_go_on,
            equals(True, "all_created"),
            promise="imports keep working while the CDN is down",
        ),
        thumbnails.ONE_ROW_EACH,
        thumbnails.BGG_UNTOUCHED,
        action("cdn-up", cdn_up),
        thumbnails.AUTO_RETRY,
    ),
    rollbacks=(common.RESTORE,),
)
