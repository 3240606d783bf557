"""bgg_flaky: 20 % of BGG's answers are 503s, drawn from the seed.

Imports run one at a time, so the fake BGG's request log is exactly the order in which the
breaker counted. Promises: retries absorb the flakiness (import success >= 95 %); the
breaker opens only if 5 consecutive requests really failed, which is checked against the
request log, not assumed. The same seed draws the same failures: the fault sequence's digest
is in summary.json.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, at_least, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS, SPEC
from chaos.scenarios import common
from chaos.stats import rounded

IMPORTS = 60
FAILURE_RATE = 0.2


async def bgg_flaky(ctx: Context) -> dict[str, Any]:
    """Each `thing` request fails with 503 with probability 0.2 (seeded)."""
    ctx.bgg_faults(FaultRule(name="flaky", path="/thing", status=503, probability=FAILURE_RATE))
    ctx.fault("bgg-flaky", True, probability=FAILURE_RATE, seed=ctx.bgg.engine.seed)
    return {"probability": FAILURE_RATE, "seed": ctx.bgg.engine.seed}


async def imports_succeed(ctx: Context) -> dict[str, Any]:
    """`IMPORTS` imports, one after the other.

    Retries are judged on the imports they could help: not those the open breaker turned
    away (they never reached BGG), and not the one whose failure opened it (README: that
    failure is not retried). Whether the breaker deserved to open is the next hypothesis,
    judged on the request log; the raw success rate is reported as a figure too.
    """
    ok = rejected = tripped = 0
    for _ in range(IMPORTS):
        call = await ctx.import_game(time_limit=HARNESS.deadline + 2)
        if call.ok:
            ok += 1
        elif call.status == 503 and call.error_code == "bgg_unavailable":
            rejected += 1
        elif (await ctx.breaker()).get("state") == "open":
            tripped += 1
    judged = IMPORTS - rejected - tripped
    output = {
        "imports": IMPORTS,
        "succeeded": ok,
        "rejected_by_open_breaker": rejected,
        "failed_by_opening_the_breaker": tripped,
        "success_rate": rounded(ok / judged, 4) if judged else None,
        "raw_success_rate": rounded(ok / IMPORTS, 4),
    }
    ctx.note(import_success_rate=output["success_rate"],
             raw_import_success_rate=output["raw_success_rate"])  # fmt: skip
    return output


def _longest_failure_run(statuses: list[int | None]) -> int:
    longest = current = 0
    for status in statuses:
        current = current + 1 if status != 200 else 0
        longest = max(longest, current)
    return longest


async def breaker_matches_log(ctx: Context) -> dict[str, Any]:
    """Did the breaker open exactly when the log shows 5 failures in a row?"""
    records = ctx.bgg.log.records(path="/thing")
    statuses = [r.status for r in records]
    longest = _longest_failure_run(statuses)
    await ctx.watcher.poll()
    opened = "open" in ctx.watcher.seen.get("BGG API", set()) or any(
        t["to_state"] == "open" for t in ctx.watcher.transitions if t["breaker"] == "BGG API"
    )
    should_open = longest >= SPEC.breaker_fail_max
    sequence = ",".join(f"{r.seq}:{r.rule or '-'}" for r in records)
    digest = hashlib.sha256(sequence.encode()).hexdigest()[:16]
    fired = sum(1 for r in records if r.rule == "flaky")
    ctx.note(fault_sequence_sha256=digest, faults_fired=fired, bgg_requests=len(records))
    return {
        "requests": len(records),
        "failed": fired,
        "longest_failure_run": longest,
        "breaker_opened": opened,
        "consistent": opened == should_open,
        "fault_sequence_sha256": digest,
    }


SCENARIO = Scenario(
    name="bgg_flaky",
    title="20 % of BGG answers fail (seeded): retries absorb them, the breaker stays honest",
    fault="the fake BGG answers 503 with probability 0.2, drawn from the seed",
    description=__doc__ or "",
    tags=("bgg", "retry"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("bgg-flaky", bgg_flaky),
        probe(
            "import-success-rate",
            imports_succeed,
            at_least(SPEC.flaky_import_success, "success_rate"),
            promise=(
                f"retries absorb 20 % failures: import success >= {SPEC.flaky_import_success:.0%}"
                " (of the imports the breaker neither rejected nor opened on)"
            ),
        ),
        probe(
            "breaker-opens-only-on-consecutive-failures",
            breaker_matches_log,
            equals(True, "consistent"),
            promise=(
                f"the breaker opens if and only if {SPEC.breaker_fail_max} consecutive requests "
                "failed (checked against the fake BGG's request log)"
            ),
        ),
    ),
    rollbacks=(common.RESTORE,),
)
