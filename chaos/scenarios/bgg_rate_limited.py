"""bgg_rate_limited: BGG answers 429 (and 503) with `Retry-After`.

Promises: a `Retry-After` within the deadline is honoured (the next request comes no sooner
than it says) and the import then succeeds within the deadline; a `Retry-After` longer than
the deadline is not waited out (the import ends within the deadline instead of sleeping);
a few rate-limited answers between successes do not open the breaker.
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, at_most, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS
from chaos.scenarios import common
from chaos.stats import rounded

RETRY_AFTER = 1


async def _limited_once(ctx: Context, status: int, retry_after: int) -> dict[str, Any]:
    """One import whose first request gets `status` + `Retry-After`."""
    ctx.bgg_faults(FaultRule(name=f"limit-{status}", path="/thing", status=status,
                             retry_after=retry_after, first_n=1))  # fmt: skip
    ctx.fault(f"bgg-{status}", True, retry_after=retry_after)
    since = ctx.bgg.log.last_seq
    call = await ctx.import_game(time_limit=HARNESS.deadline + 5)
    ctx.fault(f"bgg-{status}", False)
    records = ctx.bgg.log.records(since=since, path="/thing")
    gap = None
    if len(records) >= 2 and records[0].duration is not None:
        gap = records[1].monotonic - (records[0].monotonic + records[0].duration)
    return {
        "status": call.status,
        "seconds": rounded(call.latency_ms / 1000, 3),
        "requests": len(records),
        "waited_s": rounded(gap, 3),
    }


async def _honoured_once(ctx: Context, status: int) -> dict[str, Any]:
    """`status` + Retry-After: `RETRY_AFTER`, then a normal answer: was it waited out?"""
    output = await _limited_once(ctx, status, RETRY_AFTER)
    output["honoured"] = (
        output["status"] == 201
        and output["waited_s"] is not None
        and output["waited_s"] >= RETRY_AFTER
        and output["seconds"] <= HARNESS.deadline + HARNESS.slack
    )
    return output


async def honours_429(ctx: Context) -> dict[str, Any]:
    """429 + Retry-After: 1, then a normal answer."""
    return await _honoured_once(ctx, 429)


async def honours_503(ctx: Context) -> dict[str, Any]:
    """503 + Retry-After: 1, then a normal answer."""
    return await _honoured_once(ctx, 503)


async def long_retry_after(ctx: Context) -> dict[str, Any]:
    """429 + Retry-After: 30, far beyond the deadline."""
    return await _limited_once(ctx, 429, 30)


def _honoured(name: str, func: Any, status: int) -> Any:
    return probe(
        name,
        func,
        equals(True, "honoured"),
        promise=(
            f"{status} with Retry-After: {RETRY_AFTER} is waited out (>= {RETRY_AFTER} s before "
            f"the next request) and the import succeeds within the deadline"
        ),
    )


SCENARIO = Scenario(
    name="bgg_rate_limited",
    title="429 / 503 with Retry-After: honoured, and capped by the deadline",
    fault="the fake BGG answers 429 or 503 with Retry-After (1 s, then 30 s)",
    description=__doc__ or "",
    tags=("bgg", "retry", "rate-limit"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        _honoured("retry-after-429-honoured", honours_429, 429),
        _honoured("retry-after-503-honoured", honours_503, 503),
        probe(
            "long-retry-after-capped-by-deadline",
            long_retry_after,
            at_most(HARNESS.deadline + HARNESS.slack, "seconds", "s"),
            promise="a Retry-After beyond the deadline is not slept: the import ends in time",
        ),
        probe(
            "breaker-stays-closed",
            common.bgg_breaker_state,
            equals("closed"),
            promise="three rate-limited answers among successes do not open the breaker",
        ),
    ),
    rollbacks=(common.RESTORE,),
)
