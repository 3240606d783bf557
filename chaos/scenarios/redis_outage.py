"""redis_outage: the Redis that shares the breaker state goes away, then comes back.

Promises: requests keep being served by both workers while Redis is down (imports and
public reads, no errors); each worker falls back to its own state (`state_storage` local);
once Redis is back both share their state again, and failures through one worker open the
breaker for both, as before the outage.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.promises import HARNESS
from chaos.scenarios import common, pair

IMPORTS_PER_WORKER = 4


async def redis_down(ctx: Context) -> dict[str, Any]:
    """The proxy in front of Redis closes every connection and refuses new ones."""
    ctx.proxies.down("redis")
    ctx.fault("redis-down", True, proxy="redis")
    return {"proxy": "redis", "enabled": False}


async def requests_served(ctx: Context) -> dict[str, Any]:
    """Imports and reads through both workers while Redis is down."""
    calls = []
    for client in ctx.clients:
        calls += await ctx.imports(
            IMPORTS_PER_WORKER, client=client, time_limit=HARNESS.deadline + 3
        )
        calls.append(await client.public_games())
    ok = sum(1 for c in calls if c.ok)
    return {"requests": len(calls), "ok": ok, "all_served": ok == len(calls)}


async def local_fallback(ctx: Context) -> dict[str, Any]:
    """Each worker says it is on its own state."""
    seen = await pair.storage(ctx)
    return {"storage": seen, "local": set(seen) == {"local"}}


async def redis_up(ctx: Context) -> dict[str, Any]:
    """Redis is reachable again."""
    ctx.proxies.up("redis")
    ctx.fault("redis-down", False, proxy="redis")
    return {"proxy": "redis", "enabled": True}


async def shared_again(ctx: Context) -> dict[str, Any]:
    """Wait (bounded) until both workers share their state through Redis again."""
    deadline = time.monotonic() + 5
    output = await pair.shared_storage(ctx)
    while not output["shared"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        output = await pair.shared_storage(ctx)
    return output


SCENARIO = Scenario(
    name="redis_outage",
    title="Redis goes away: both workers keep serving on local state, then share it again",
    fault="the TCP proxy in front of Redis goes down (connections closed, new ones refused)",
    description=__doc__ or "",
    tags=("redis", "breaker", "workers"),
    hypothesis=Hypothesis(
        "Both workers serve, share the breaker state in Redis, and the breakers are closed",
        (common.PUBLIC_API, pair.SHARED, common.BGG_CLOSED, common.CDN_CLOSED),
    ),
    method=(
        action("redis-down", redis_down),
        probe(
            "requests-keep-being-served",
            requests_served,
            equals(True, "all_served"),
            promise="imports and public reads keep succeeding on both workers without Redis",
        ),
        probe(
            "workers-fall-back-to-local-state",
            local_fallback,
            equals(True, "local"),
            promise="each worker falls back to its own breaker state (state_storage local)",
        ),
        action("redis-up", redis_up),
        probe(
            "state-shared-again",
            shared_again,
            equals(True, "shared"),
            promise="once Redis is back both workers share the breaker state again",
        ),
        pair.OPENS_AT_FIVE,
        pair.BOTH_REJECT,
    ),
    rollbacks=(common.RESTORE,),
    service="pair",
    requires=frozenset({"redis", "two_workers"}),
)
