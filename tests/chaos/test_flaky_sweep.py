"""bgg_flaky against the real service and fakes, over many seeds (one stack for all).

Compressed: one service for every seed instead of a fresh one each, and `SWEEP_IMPORTS`
judged imports per seed with the threshold derived for that many (`threshold`), so the
sweep takes a minute, not a quarter of an hour. The full-size scenario (200 imports) is what
`python -m chaos run` runs; its threshold over thousands of seeds is in test_flaky_plan.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from chaos.context import Context, Ids
from chaos.events import EventLog
from chaos.scenarios import bgg_flaky, common
from chaos.stack import Deployment, Options, Stack
from chaos.watch import BreakerWatcher, PublicSampler

pytestmark = pytest.mark.slow

#: 12 seeds, two of whose plans open the breaker (451, 458), so that path is swept too. The
#: sweep checks that the real service follows the plans; how often the scenario's threshold
#: fails over thousands of seeds is computed offline in test_flaky_plan, not here.
SWEEP_SEEDS = range(450, 462)
SWEEP_IMPORTS = 60
#: Every seed fails without retries (test_flaky_plan shows it for thousands); two show the
#: real service does too.
MUTANT_SEEDS = range(450, 452)


class Sweep:
    """Fakes, proxies and one service, and a fresh `Context` per seed."""

    def __init__(self, stack: Stack, deployment: Deployment) -> None:
        self.stack = stack
        self.deployment = deployment
        self.events = EventLog(None)
        self.ids = Ids(random.Random(0))

    async def run(self, seed: int, imports: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """bgg_flaky's method with `seed`: (import probe output, breaker probe output)."""
        self.stack.reset_upstreams(seed)
        clients = self.deployment.clients
        ctx = Context(
            name="bgg_flaky", seed=seed, stack=self.stack, deployment=self.deployment,
            events=self.events, ids=self.ids, sampler=PublicSampler(clients, self.events),
            watcher=BreakerWatcher(clients, self.events),
        )  # fmt: skip
        # One service for every seed (a fresh one in a real run): a success first, so the
        # failures that ended the seed before do not count toward this one's breaker, and
        # the breaker transitions of earlier seeds are known before this seed starts.
        (bgg_id, _title) = common.REAL_GAMES[0]
        await common.wait_for_half_open(ctx)
        assert (await ctx.import_game(bgg_id)).ok
        await ctx.watcher.poll()
        ctx.watcher.forget()
        self.stack.bgg.log.reset()
        await bgg_flaky.bgg_flaky(ctx)
        imported = await bgg_flaky.imports_succeed(ctx, imports)
        breaker = await bgg_flaky.breaker_matches_log(ctx)
        plan_index = {bgg_id: i for i, bgg_id in enumerate(ctx.state["flaky_ids"])}
        requested = [
            (int(parse_qs(r.query)["id"][0]), r.status)
            for r in self.stack.bgg.log.records(path="/thing")
        ]
        # The service's own recovery probe (BGG_RECOVERY_PROBE_ID) is not one of the plan's.
        breaker["observed"] = [
            (plan_index[bgg_id], status) for bgg_id, status in requested if bgg_id in plan_index
        ]
        breaker["digest"] = ctx.figures["fault_sequence_sha256"]
        return imported, breaker


async def _sweep(tmp_path: Path, **service_env: str) -> AsyncIterator[Sweep]:
    stack = Stack(Options(seed=0, report_dir=tmp_path, service_env=service_env))
    try:
        stack.start()
        yield Sweep(stack, await stack.deployment("main", "sweep"))
    finally:
        await stack.aclose()
        stack.close()


@pytest.fixture
async def sweep(tmp_path: Path) -> AsyncIterator[Sweep]:
    async for running in _sweep(tmp_path):
        yield running


@pytest.fixture
async def no_retries(tmp_path: Path) -> AsyncIterator[Sweep]:
    async for running in _sweep(tmp_path, BGG_RETRY_ATTEMPTS="1"):
        yield running


async def test_the_same_seed_replays_the_same_faults_and_answers(sweep: Sweep) -> None:
    first = await sweep.run(1, SWEEP_IMPORTS)
    again = await sweep.run(1, SWEEP_IMPORTS)
    assert first[1]["digest"] == again[1]["digest"]
    assert first[1]["fault_plan_followed"] and again[1]["fault_plan_followed"]
    # What BGG answered, request by request, is the same too (ids differ, plan slots not).
    assert first[1]["observed"] == again[1]["observed"]
    assert first[0]["failed"] == again[0]["failed"]


def _opens(plan: list[int], imports: int) -> bool:
    """Whether 3 attempts per import meet 5 failed requests in a row in the first imports."""
    run = 0
    for failures in plan[:imports]:
        for status in [503] * min(failures, 3) + [200] * (failures < 3):
            run = run + 1 if status == 503 else 0
            if run >= 5:
                return True
    return False


async def test_bgg_flaky_passes_for_every_seed(sweep: Sweep) -> None:
    allowed = bgg_flaky.threshold(SWEEP_IMPORTS).max_failed
    failures: dict[int, int] = {}
    opened: set[int] = set()
    for seed in SWEEP_SEEDS:
        imported, breaker = await sweep.run(seed, SWEEP_IMPORTS)
        assert breaker["fault_plan_followed"], seed
        assert breaker["consistent"], (seed, breaker)
        assert imported["judged"] == SWEEP_IMPORTS, (seed, imported)
        failures[seed] = imported["failed"]
        if breaker["breaker_opened"]:
            opened.add(seed)
    expected = {s for s in SWEEP_SEEDS if _opens(bgg_flaky.fault_plan(s), SWEEP_IMPORTS)}
    assert opened == expected and opened, "the breaker opened exactly where the plans say"
    assert max(failures.values()) <= allowed, failures
    assert imported["allowed_failures"] == allowed


async def test_a_service_without_retries_fails_for_every_seed(no_retries: Sweep) -> None:
    failures: dict[int, int] = {}
    for seed in MUTANT_SEEDS:
        imported, _ = await no_retries.run(seed, bgg_flaky.IMPORTS)
        failures[seed] = imported["failed"]
    assert min(failures.values()) > bgg_flaky.MAX_FAILED, failures
