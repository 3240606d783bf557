"""bgg_queued: BGG answers 202 "queued" before it answers for real.

Promises: a 202 is retried (not taken as an answer), so an import that meets two 202s
succeeds on its third request, within the deadline, with exactly 3 requests at the fake; a
queue that empties between imports never opens the breaker.
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS, SPEC
from chaos.scenarios import common
from chaos.stats import rounded

IMPORTS = 3
QUEUED = 2


async def queued_then_served(ctx: Context) -> dict[str, Any]:
    """Each import meets two 202 answers, then the game."""
    results = []
    for index in range(IMPORTS):
        ctx.bgg_faults(FaultRule(name=f"queued-{index}", path="/thing", status=202, first_n=QUEUED))
        since = ctx.bgg.log.last_seq
        call = await ctx.import_game(time_limit=HARNESS.deadline + 3)
        requests = ctx.bgg.log.count(since=since, path="/thing")
        results.append({"status": call.status, "requests": requests,
                        "seconds": rounded(call.latency_ms / 1000, 3)})  # fmt: skip
    ctx.bgg_faults()
    ok = all(
        r["status"] == 201
        and r["requests"] == QUEUED + 1
        and r["seconds"] is not None
        and r["seconds"] <= HARNESS.deadline + HARNESS.slack
        for r in results
    )
    ctx.note(import_success_rate=sum(r["status"] == 201 for r in results) / IMPORTS)
    return {"imports": results, "as_promised": ok}


SCENARIO = Scenario(
    name="bgg_queued",
    title="202 queued: retried and waited out within the deadline",
    fault="the fake BGG answers 202 (its real 'queued' message) twice per import",
    description=__doc__ or "",
    tags=("bgg", "retry"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        probe(
            "queued-answers-waited-out",
            queued_then_served,
            equals(True, "as_promised"),
            promise=(
                f"after {QUEUED} answers 202 the import succeeds on request {QUEUED + 1} "
                f"(of {SPEC.retry_attempts}), within the deadline"
            ),
        ),
        probe(
            "breaker-stays-closed",
            common.bgg_breaker_state,
            equals("closed"),
            promise="queued answers between successes do not open the breaker",
        ),
    ),
    rollbacks=(common.RESTORE,),
)
