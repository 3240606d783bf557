"""bgg_blackhole: BGG's connections hang: accepted, never answered.

The TCP proxy in front of the fake BGG swallows every byte the service sends (Toxiproxy's
`timeout` toxic with no timeout), so each request waits for an answer that never comes.
Promises: every import ends within the deadline (`BGG_DEADLINE_SECONDS`, 2 s as the harness
sets it) with a 504; the public API's p99 stays low (no worker starvation) and error-free;
the breaker opens and then rejects fast; after the blackhole one trial closes it.
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, at_most, equals, probe
from chaos.promises import HARNESS
from chaos.proxy import Timeout
from chaos.scenarios import common
from chaos.stats import rounded

CONCURRENT = 6


async def blackhole_bgg(ctx: Context) -> dict[str, Any]:
    """Swallow everything the service sends to BGG (upstream direction)."""
    ctx.proxies.add_toxic("bgg", Timeout(name="blackhole", direction="upstream", timeout=0))
    ctx.fault("bgg-blackhole", True, proxy="bgg")
    return {"toxic": "timeout", "direction": "upstream"}


async def imports_during_blackhole(ctx: Context) -> dict[str, Any]:
    """Concurrent imports; the client waits a little longer than the deadline, no more."""
    calls = await ctx.imports(CONCURRENT, time_limit=HARNESS.deadline + HARNESS.slack + 1)
    slowest = max(c.latency_ms for c in calls) / 1000
    output = {
        "statuses": [c.status for c in calls],
        "slowest_s": rounded(slowest, 3),
        "all_504": all(c.status == 504 for c in calls),
    }
    ctx.note(deadline_max_s=output["slowest_s"])
    ctx.state["blackhole"] = output
    return output


async def imports_answered_504(ctx: Context) -> dict[str, Any]:
    """What the blackholed imports answered."""
    return dict(ctx.state.get("blackhole", {}))


async def breaker_opened(ctx: Context) -> dict[str, Any]:
    """Whether the hanging requests opened the breaker (6 timeouts > fail_max 5)."""
    status = await ctx.breaker()
    opened_at = common.note_mttd(ctx, status) if status.get("state") == "open" else None
    return {
        "state": status.get("state"),
        "open": status.get("state") == "open",
        "opened_at": opened_at,
    }


async def end_blackhole(ctx: Context) -> dict[str, Any]:
    """Let bytes through again (hanging requests get their answers)."""
    ctx.proxies.clear_toxics("bgg")
    ctx.fault("bgg-blackhole", False, proxy="bgg")
    return {"toxics": 0}


SCENARIO = Scenario(
    name="bgg_blackhole",
    title="BGG connections hang: imports end within the deadline, the public API stays fast",
    fault="the TCP proxy in front of BGG accepts connections and never forwards a byte",
    description=__doc__ or "",
    tags=("bgg", "network", "deadline"),
    hypothesis=Hypothesis(
        "The catalogue serves quickly and both breakers are closed",
        (common.PUBLIC_API, common.PUBLIC_API_FAST, common.BGG_CLOSED, common.CDN_CLOSED),
    ),
    method=(
        action("blackhole-bgg", blackhole_bgg),
        probe(
            "imports-end-within-deadline",
            imports_during_blackhole,
            at_most(HARNESS.deadline + HARNESS.slack, "slowest_s", "s"),
            promise=(
                f"every import ends within the deadline ({HARNESS.deadline:g} s, set by the "
                f"harness; +{HARNESS.slack:g} s for scheduling)"
            ),
        ),
        probe(
            "timeouts-answer-504",
            imports_answered_504,
            equals(True, "all_504"),
            promise="an import that ran out of time answers 504",
        ),
        probe(
            "breaker-opens",
            breaker_opened,
            equals(True, "open"),
            promise=f"{CONCURRENT} hanging requests (more than 5) open the breaker",
        ),
        common.REJECTIONS_503,
        common.REJECTIONS_FAST,
        action("end-blackhole", end_blackhole),
        common.ONE_TRIAL,
        common.TRIAL_CLOSES,
    ),
    rollbacks=(common.RESTORE,),
)
