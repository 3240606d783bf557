"""bgg_outage: BGG answers 503 to everything, then recovers.

Promises: the breaker opens after exactly 5 failed upstream requests (counted at the fake
BGG); every later import is rejected at once with 503 + Retry-After, p99 < 50 ms, and BGG
sees nothing while the breaker is open; the public API keeps a 0 % error rate; an alert
fires; after the outage exactly one half-open trial closes the breaker. Measures the time
to detection (fault -> breaker open, fault -> alert).
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import SPEC
from chaos.scenarios import alerts, common


async def bgg_answers_503(ctx: Context) -> dict[str, Any]:
    """Every `thing` request gets a 503 (an HTML error page, as a proxy in front of BGG)."""
    ctx.bgg_faults(FaultRule(name="outage", path="/thing", status=503))
    ctx.fault("bgg-503", True)
    return {"status": 503}


async def bgg_recovers(ctx: Context) -> dict[str, Any]:
    """BGG answers normally again."""
    ctx.bgg_faults()
    ctx.fault("bgg-503", False)
    return {"status": 200}


SCENARIO = Scenario(
    name="bgg_outage",
    title="BGG answers 503: the breaker opens after 5 failures, rejects fast, recovers",
    fault="the fake BGG answers 503 to every request",
    description=__doc__ or "",
    tags=("bgg", "breaker", "alerts"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("bgg-answers-503", bgg_answers_503),
        probe(
            "breaker-opens-after-fail-max",
            common.drive_until_open,
            equals(SPEC.breaker_fail_max, "upstream_requests_at_open"),
            promise=(
                f"the breaker opens after exactly {SPEC.breaker_fail_max} failed upstream "
                "requests (counted at the fake BGG)"
            ),
        ),
        common.REJECTIONS_503,
        common.REJECTIONS_FAST,
        common.REJECTIONS_NO_UPSTREAM,
        alerts.ALERT_FIRES,
        action("bgg-recovers", bgg_recovers),
        common.ONE_TRIAL,
        common.TRIAL_CLOSES,
        alerts.ALERT_RESOLVES,
    ),
    rollbacks=(common.RESTORE,),
)
