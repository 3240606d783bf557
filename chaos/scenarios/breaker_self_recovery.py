"""breaker_self_recovery: BGG fails, the breaker opens, BGG heals, and nobody imports.

An open breaker only half-opens when called, so without the service's recovery probe
(`BGG_RECOVERY_PROBE_ID`) it would stay open with BGG healthy for as long as nobody imports,
and its alert would keep firing. Promises: a few imports open the breaker and the
`breaker_open` alert fires; a probe while BGG still fails keeps it open (re-opened, not
stuck half-open); once BGG is back, with no request from the harness but status polls, the
status says `closed` within the reset timeout + `RECOVERY_CHECK_SECONDS` (+ slack, set by the
harness) of BGG healing, `circuit_breaker_state` reads 0, the fake BGG saw exactly one
request meanwhile (the probe's), and the alert resolves (once: fired once, resolved once).
Measures the seconds from healing to `closed`.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from chaos.client import BGG_BREAKER
from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, at_most, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS
from chaos.scenarios import alerts, common
from chaos.stats import rounded

#: From BGG healing to the status saying closed, at most.
CLOSE_BOUND = common.SELF_CLOSE_BOUND


async def bgg_fails(ctx: Context) -> dict[str, Any]:
    """Every `thing` request gets a 503."""
    ctx.bgg_faults(FaultRule(name="outage", path="/thing", status=503))
    ctx.fault("bgg-503", True)
    return {"status": 503}


async def failed_probe_keeps_it_open(ctx: Context) -> dict[str, Any]:
    """Wait (bounded) for the service's own probe to reach the failing BGG, then for the
    breaker to be open again with a new `opened_at`. No import is sent."""
    first = await ctx.breaker()
    opened = first.get("opened_at")
    since = int(ctx.state.get("outage_seq", 0))
    deadline = time.monotonic() + CLOSE_BOUND
    seen = common.probe_requests(ctx, since=since)
    while seen == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        seen = common.probe_requests(ctx, since=since)
    status = await ctx.breaker()
    until = time.monotonic() + 1.0
    while seen and status.get("opened_at") == opened and time.monotonic() < until:
        await asyncio.sleep(0.05)
        status = await ctx.breaker()
    return {
        "probe_requests": seen,
        "state": status.get("state"),
        "reopened": bool(seen) and status.get("state") == "open"
        and status.get("opened_at") != opened,
    }  # fmt: skip


async def bgg_heals(ctx: Context) -> dict[str, Any]:
    """BGG answers normally again; from now on the harness sends no import."""
    ctx.bgg_faults()
    ctx.fault("bgg-503", False)
    ctx.state["healed_mono"] = time.monotonic()
    ctx.state["healed_seq"] = ctx.bgg.log.last_seq
    return {"status": 200}


async def closes_without_traffic(ctx: Context) -> dict[str, Any]:
    """Poll the status (nothing else) until it says closed on every service, or the bound
    and 2 s more have passed; the seconds from healing to closed."""
    states, closed_after = await common.closed_after_healing(ctx, grace=2)
    status = await ctx.breaker()
    ctx.note(self_recovery_s=rounded(closed_after, 3))
    return {
        "state": states,
        "is_available": status.get("is_available"),
        "closed_after_s": rounded(closed_after, 3),
        "bound_s": CLOSE_BOUND,
    }


def _gauge(text: str, breaker: str) -> float | None:
    pattern = rf'^circuit_breaker_state\{{[^}}]*breaker="{re.escape(breaker)}"[^}}]*\}} (\S+)$'
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    return max(values) if values else None


async def gauge_reads_closed(ctx: Context) -> dict[str, Any]:
    """`circuit_breaker_state{breaker="BGG API"}` on every service (the largest is judged)."""
    values = []
    for client in ctx.clients:
        text = await client.metrics_text()
        values.append(_gauge(text, BGG_BREAKER) if text is not None else None)
    known = [v for v in values if v is not None]
    return {"values": values, "max": max(known) if len(known) == len(values) else None}


async def one_probe_request(ctx: Context) -> dict[str, Any]:
    """What reached the fake BGG between healing and now (the harness sent no import)."""
    since = int(ctx.state["healed_seq"])
    return {
        "upstream_requests": len(ctx.bgg.log.records(since=since, path="/thing")),
        "probe_requests": common.probe_requests(ctx, since=since),
    }


async def open_and_mark(ctx: Context) -> dict[str, Any]:
    """`drive_until_open`, after noting where the fake's request log stood."""
    ctx.state["outage_seq"] = ctx.bgg.log.last_seq
    return await common.drive_until_open(ctx)


SCENARIO = Scenario(
    name="breaker_self_recovery",
    title="BGG heals while nobody imports: the breaker closes by itself, the alert resolves",
    fault="the fake BGG answers 503, then recovers with no traffic",
    description=__doc__ or "",
    tags=("bgg", "breaker", "recovery", "alerts"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("bgg-answers-503", bgg_fails),
        probe(
            "breaker-opens",
            open_and_mark,
            equals(True, "opened"),
            promise="a few imports while BGG fails open the breaker",
        ),
        alerts.ALERT_FIRES,
        probe(
            "failed-probe-keeps-it-open",
            failed_probe_keeps_it_open,
            equals(True, "reopened"),
            promise=(
                "past the reset timeout the service probes BGG by itself; while BGG still "
                "fails, the probe re-opens the breaker"
            ),
        ),
        action("bgg-recovers", bgg_heals),
        probe(
            "closes-without-traffic",
            closes_without_traffic,
            at_most(CLOSE_BOUND, "closed_after_s", "s"),
            promise=(
                "with no import, the status says closed within the reset timeout + "
                f"RECOVERY_CHECK_SECONDS ({HARNESS.breaker_reset_timeout:g} + "
                f"{HARNESS.recovery_check:g} s, set by the harness; +{HARNESS.slack:g} s) of "
                "BGG healing"
            ),
        ),
        probe(
            "gauge-reads-closed",
            gauge_reads_closed,
            equals(0.0, "max"),
            promise='circuit_breaker_state{breaker="BGG API"} reads 0 (closed)',
        ),
        probe(
            "one-probe-request",
            one_probe_request,
            equals(1, "upstream_requests"),
            promise="BGG sees exactly one request after healing: the probe's",
        ),
        alerts.ALERT_RESOLVES,
    ),
    rollbacks=(common.RESTORE,),
)
