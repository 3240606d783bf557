"""bgg_retry_herd: a BGG blip meets imports made at the same moment; their retries spread out.

`BURSTS` times, `BURST` imports start together and each meets one 503 (a rule per fresh id,
`first_n=1`), so their first attempts fail in step: the moment a herd forms. The service's
retry policy waits full-jitter exponential backoff (`wait_random_exponential`): the first
wait is uniform on [0, W), W = `BGG_RETRY_INITIAL_WAIT`, set to `INITIAL_WAIT` here so the
wait dwarfs loopback overheads. Without jitter every first wait is exactly W and the herd
comes back in step.

Judged in the fake BGG's request log: an import's retry gap is from its failed request's
arrival to its retry's arrival, both stamped by the fake on one clock as each request
arrives. The fake answers only after stamping the arrival and the service waits only after
reading the answer, so the gap is the fake's answer time plus the service's overhead plus
its wait: never less than the wait, however late the fake's event loop runs. (Measured from
the answer's end instead, a stall in the fake after it wrote the 503 stamped the end late and
let an un-jittered retry look early.) Promise: at least one of at least `MIN_RETRIED` gaps is
under W. A retry without jitter is never under W (the mutant cannot pass). A service with
jitter has every gap >= W only if each U_i >= 1 - o_i / W (o_i the answer time plus
overhead); with every o_i under W / 2 that is at most 0.5^MIN_RETRIED < 1e-6 (`false_alarm`).
Bursts are `SPEC.breaker_fail_max - 1` imports, so the failures in step
never open the breaker; the retry budget (full in a fresh service) pays for every retry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.fakes import FaultRule
from chaos.fakes.log import RequestRecord
from chaos.promises import FALSE_ALARM, HARNESS, SPEC
from chaos.scenarios import common
from chaos.stats import rounded

BURST = SPEC.breaker_fail_max - 1
BURSTS = 6
#: The first retry wait's upper end (s): jitter makes it uniform on [0, INITIAL_WAIT).
INITIAL_WAIT = 0.5
#: Gaps needed for a verdict (a retry the budget refused has none).
MIN_RETRIED = 20
#: The fake's answer time plus the service's own overhead (answer read -> retry arrives at
#: BGG) the false-alarm bound assumes at most: loopback takes milliseconds.
MAX_OVERHEAD = INITIAL_WAIT / 2


def false_alarm(gaps: int = MIN_RETRIED) -> float:
    """P(no gap under the wait) for a service with jitter and overheads under `MAX_OVERHEAD`."""
    return (MAX_OVERHEAD / INITIAL_WAIT) ** gaps


@dataclass(frozen=True, slots=True)
class Spread:
    """The retry gaps of one run, judged."""

    gaps: list[float]
    under_wait: int
    spread_out: bool

    def to_json(self) -> dict[str, Any]:
        """Figures for the journal."""
        ordered = sorted(self.gaps)
        return {
            "retried": len(self.gaps),
            "under_wait": self.under_wait,
            "min_gap_s": rounded(ordered[0], 4) if ordered else None,
            "max_gap_s": rounded(ordered[-1], 4) if ordered else None,
            "spread_out": self.spread_out,
        }


def retry_gaps(records: list[RequestRecord], ids: set[int]) -> list[float]:
    """For each of `ids` whose first request failed and that was asked again: seconds from
    that request's arrival to the next one's (both stamped on arrival, before any answer)."""
    by_id: dict[int, list[RequestRecord]] = {}
    for record in records:
        value = parse_qs(record.query).get("id", [""])[-1]
        if value.isdigit() and int(value) in ids:
            by_id.setdefault(int(value), []).append(record)
    gaps = []
    for found in by_id.values():
        found.sort(key=lambda r: r.seq)
        if len(found) < 2 or found[0].status == 200:
            continue
        gaps.append(found[1].monotonic - found[0].monotonic)
    return gaps


def judge(gaps: list[float], wait: float = INITIAL_WAIT, needed: int = MIN_RETRIED) -> Spread:
    """Spread out: enough gaps, and one under `wait` (impossible for a fixed wait of `wait`)."""
    under = sum(1 for gap in gaps if gap < wait)
    return Spread(gaps, under, len(gaps) >= needed and under > 0)


async def herds(ctx: Context) -> dict[str, Any]:
    """`BURSTS` bursts of `BURST` imports at once, each meeting one 503."""
    ids = [ctx.ids.fresh() for _ in range(BURST * BURSTS)]
    ctx.state["herd_ids"] = set(ids)
    ctx.bgg_faults(*(
        FaultRule(name=f"blip-{i}", path="/thing", match={"id": str(bgg_id)}, status=503,
                  first_n=1)
        for i, bgg_id in enumerate(ids)
    ))  # fmt: skip
    ctx.fault("bgg-blip", True, imports_at_once=BURST, bursts=BURSTS)
    statuses: dict[str, int] = {}
    for start in range(0, len(ids), BURST):
        calls = await asyncio.gather(*(
            ctx.import_game(bgg_id, time_limit=HARNESS.deadline + 3)
            for bgg_id in ids[start : start + BURST]
        ))  # fmt: skip
        for call in calls:
            statuses[str(call.status)] = statuses.get(str(call.status), 0) + 1
    ctx.bgg_faults()
    ctx.fault("bgg-blip", False)
    return {"imports": len(ids), "statuses": statuses}


async def retries_spread_out(ctx: Context) -> dict[str, Any]:
    """The retry gaps in the fake BGG's log."""
    gaps = retry_gaps(ctx.bgg.log.records(path="/thing"), ctx.state.get("herd_ids", set()))
    spread = judge(gaps)
    ctx.note(retry_gaps_under_wait=spread.under_wait, retry_gaps=len(gaps))
    return {
        **spread.to_json(),
        "wait_s": INITIAL_WAIT,
        "false_alarm": float(f"{false_alarm():.3g}"),
    }


SCENARIO = Scenario(
    name="bgg_retry_herd",
    title="A BGG blip hits imports made at once: their retries do not come back in step",
    fault=f"{BURSTS} x {BURST} imports at once, each meeting one 503 from the fake BGG",
    description=__doc__ or "",
    tags=("bgg", "retry", "jitter"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("bgg-blip", herds),
        probe(
            "retries-jittered",
            retries_spread_out,
            equals(True, "spread_out"),
            promise=(
                f"of >= {MIN_RETRIED} retries after a 503 met in step, one comes sooner than "
                f"the un-jittered wait of {INITIAL_WAIT:g} s (never, without jitter; a service "
                f"with jitter fails this with p <= {false_alarm():.1g} < {FALSE_ALARM:g} while "
                f"its overhead stays under {MAX_OVERHEAD:g} s)"
            ),
        ),
    ),
    rollbacks=(common.RESTORE,),
    # The verdict stands on the waits it sets: a --target service keeps its own.
    requires=frozenset({"own_service"}),
    service_env=(
        ("BGG_RETRY_INITIAL_WAIT", f"{INITIAL_WAIT:g}"),
        ("BGG_RETRY_MAX_WAIT", f"{INITIAL_WAIT * 2:g}"),
    ),
)
