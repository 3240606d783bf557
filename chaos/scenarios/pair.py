"""Helpers for the two-worker scenarios (shared_breaker, redis_outage).

"Two workers" are two service processes sharing one database and one Redis, as two uvicorn
workers or two replicas do; being separate processes on separate ports lets the harness
send a request to the worker it chooses, so "failures seen by one worker open the breaker
for the other" is tested, not hoped for by the kernel's load balancing.
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import SteadyProbe, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS, SPEC


async def storage(ctx: Context) -> list[Any]:
    """`state_storage` of the BGG breaker on each worker."""
    return [(await ctx.breaker(client=c)).get("state_storage") for c in ctx.clients]


async def shared_storage(ctx: Context) -> dict[str, Any]:
    """Whether every worker keeps its breaker state in Redis."""
    seen = await storage(ctx)
    return {"storage": seen, "shared": len(seen) == 2 and set(seen) == {"redis"}}


SHARED = SteadyProbe(
    probe(
        "breaker-state-in-redis",
        shared_storage,
        equals(True, "shared"),
        promise="both workers keep the breaker state in Redis",
    )
)


async def failures_via_one_open_both(ctx: Context) -> dict[str, Any]:
    """BGG fails; worker A's import makes 3 failed requests, worker B's makes the 4th and 5th.

    Then both must reject at once, and BGG must see no more requests.
    """
    a, b = ctx.clients
    ctx.bgg_faults(FaultRule(name="outage", path="/thing", status=503))
    ctx.fault("bgg-503", True)
    before = ctx.thing_requests()
    first = await ctx.import_game(client=a, time_limit=HARNESS.deadline + 2)
    second = await ctx.import_game(client=b, time_limit=HARNESS.deadline + 2)
    at_open = ctx.thing_requests()
    rejected = [await ctx.import_game(client=c, time_limit=5) for c in (a, b, a, b, a, b)]
    states = [(await ctx.breaker(client=c)).get("state") for c in (a, b)]
    later = ctx.thing_requests() - at_open
    rejections = [c.status for c in rejected]
    output = {
        "statuses": [first.status, second.status],
        "upstream_requests_at_open": at_open - before,
        "rejections": rejections,
        "states": states,
        "later_upstream_requests": later,
        "both_reject": rejected_by_both(rejections, states, later),
    }
    ctx.state["shared"] = output
    return output


def rejected_by_both(rejections: list[int | None], states: list[Any], later: int) -> bool:
    """Every later import got 503, both workers report open, and BGG saw none of them."""
    return (
        bool(rejections)
        and all(status == 503 for status in rejections)
        and states == ["open", "open"]
        and later == 0
    )


async def both_reject(ctx: Context) -> dict[str, Any]:
    """From `failures_via_one_open_both`."""
    return dict(ctx.state.get("shared", {}))


OPENS_AT_FIVE = probe(
    "failures-via-both-open-at-fail-max",
    failures_via_one_open_both,
    equals(SPEC.breaker_fail_max, "upstream_requests_at_open"),
    promise=(
        f"{SPEC.breaker_fail_max} failed requests between the two workers (3 via A, 2 via B) "
        "open the breaker"
    ),
)
BOTH_REJECT = probe(
    "both-workers-reject",
    both_reject,
    equals(True, "both_reject"),
    promise="then both workers reject with 503 and BGG sees no further request",
)
