"""network_errors: BGG refuses connections, resets them, and cannot be resolved.

Three phases, each a real socket-level failure: the proxy in front of BGG down (connection
refused), the proxy resetting every connection (TCP RST), and a service whose BGG host name
does not resolve (`.invalid`, RFC 6761; a service of its own, started for this phase).
Promises for each: the failing import is retried (3 attempts: the breaker counts 3
failures after it), the failures are counted, the breaker opens during the second failing
import (statuses 502, 502, then 503), and the errors are 502s, never 500s.
"""

from __future__ import annotations

from typing import Any

from chaos.client import ServiceClient
from chaos.context import Context, Skip
from chaos.core import Activity, Hypothesis, Scenario, equals, probe
from chaos.promises import HARNESS, SPEC
from chaos.proxy import ResetPeer
from chaos.scenarios import common

#: With 3 attempts per import and fail_max 5: 3 failures, then 2 more open the breaker.
EXPECTED = [502, 502, 503]


async def _phase(ctx: Context, name: str, client: ServiceClient) -> dict[str, Any]:
    """Three imports one by one; the breaker's failure count after the first."""
    first = await ctx.import_game(client=client, time_limit=HARNESS.deadline + 2)
    counted = (await ctx.breaker(client=client)).get("failure_count")
    rest = [await ctx.import_game(client=client, time_limit=HARNESS.deadline + 2) for _ in range(2)]
    statuses = [first.status, *(c.status for c in rest)]
    output = {
        "statuses": statuses,
        "failures_after_first_import": counted,
        "codes": [c.error_code for c in (first, *rest)],
        "as_promised": statuses == EXPECTED and counted == SPEC.retry_attempts,
    }
    ctx.state[name] = output
    return output


async def _recover(ctx: Context, fault: str) -> None:
    ctx.proxies.reset()
    ctx.fault(fault, False, proxy="bgg")
    await common.wait_for_half_open(ctx)
    await ctx.import_game(time_limit=HARNESS.deadline + 2)


async def connection_refused(ctx: Context) -> dict[str, Any]:
    """The proxy stops listening: every connect is refused by the kernel."""
    ctx.proxies.down("bgg")
    ctx.fault("bgg-refused", True, proxy="bgg")
    output = await _phase(ctx, "refused", ctx.service)
    await _recover(ctx, "bgg-refused")
    return output


async def connection_reset(ctx: Context) -> dict[str, Any]:
    """The proxy resets every connection as soon as it is made."""
    ctx.proxies.add_toxic("bgg", ResetPeer(name="reset", direction="downstream", timeout=0))
    ctx.fault("bgg-reset", True, proxy="bgg")
    output = await _phase(ctx, "reset", ctx.service)
    await _recover(ctx, "bgg-reset")
    return output


async def name_not_resolved(ctx: Context) -> dict[str, Any]:
    """A service whose BGG_BASE_URL host does not resolve."""
    if ctx.target_mode:
        raise Skip("needs a service started with an unresolvable BGG host")
    label = f"{ctx.name}-dns"
    deployment = await ctx.stack.deployment("dns", label)
    ctx.fault("bgg-dns-failure", True, host="bgg.chaos.invalid")
    try:
        output = await _phase(ctx, "dns", deployment.client)
    finally:
        ctx.fault("bgg-dns-failure", False)
        await ctx.stack.release(label)  # no later scenario needs it: free the CPU
    return output


def _phase_probe(name: str, func: Any, what: str) -> Activity:
    return probe(
        name,
        func,
        equals(True, "as_promised"),
        promise=(
            f"{what}: retried ({SPEC.retry_attempts} attempts), counted, the breaker opens "
            f"during the second failing import (statuses {EXPECTED})"
        ),
    )


SCENARIO = Scenario(
    name="network_errors",
    title="Refused, reset and unresolvable BGG: retried, counted, the breaker opens",
    fault="connection refused, TCP reset, DNS failure (one phase each)",
    description=__doc__ or "",
    tags=("bgg", "network"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        _phase_probe("connection-refused", connection_refused, "connection refused"),
        _phase_probe("connection-reset", connection_reset, "connection reset"),
        _phase_probe("dns-failure", name_not_resolved, "host name not resolved"),
    ),
    rollbacks=(common.RESTORE,),
)
