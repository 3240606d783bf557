"""A whole run: which scenarios on which deployments, in order, each on a clean slate.

Between scenarios the fakes are reset and re-seeded with the scenario's own seed, derived
from the run's seed and the scenario's name, so a scenario's fault sequence is the same
whatever else runs with it. Run seeds and scenario seeds are disjoint ranges, so `--seed`
takes either back: a run seed derives every scenario's seed, a scenario seed is used as is.
Deployments other than `main` are stopped after the last scenario that uses them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from chaos.context import Context, Ids
from chaos.core import Scenario
from chaos.engine import ScenarioResult, run_scenario, skipped
from chaos.events import EventLog
from chaos.redis_server import redis_available
from chaos.service import HarnessError
from chaos.stack import Stack
from chaos.watch import BreakerWatcher, PublicSampler


@dataclass(frozen=True, slots=True)
class Item:
    """One scenario on one backend."""

    scenario: Scenario
    name: str
    deployment: str
    backend: str


#: Run seeds are 0 .. 2**32 - 1; scenario seeds are 2**32 + 32 bits of a hash.
SCENARIO_SEEDS = 2**32
MAX_SEED = 2**33 - 1


def is_scenario_seed(seed: int) -> bool:
    """Whether `seed` is a scenario's own seed (as printed) rather than a run seed."""
    return seed >= SCENARIO_SEEDS


def derive_seed(seed: int, name: str) -> int:
    """A scenario's own seed: stable for (run seed, scenario name); a scenario seed as is.

    Keeping a scenario seed unchanged is what makes the seed a scenario prints replay it.
    """
    if is_scenario_seed(seed):
        return seed
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return SCENARIO_SEEDS + int.from_bytes(digest[:4], "big")


def plan(scenarios: list[Scenario], stack: Stack) -> list[Item]:
    """Scenarios x backends. `per_backend` ones also run on PostgreSQL when configured."""
    options = stack.options
    url = options.database_url or ""
    main_backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    items = []
    for scenario in scenarios:
        items.append(Item(scenario, scenario.name, scenario.service, main_backend))
        extra_pg = options.postgres_url is not None and main_backend == "sqlite"
        if scenario.per_backend and extra_pg and options.target is None:
            items.append(Item(scenario, f"{scenario.name}[postgresql]", "postgresql", "postgresql"))
    return items


def _skip_reason(item: Item, stack: Stack) -> str | None:
    needs = item.scenario.requires
    if stack.options.target is not None and (needs or item.deployment != "main"):
        return "needs services the harness starts itself (not possible with --target)"
    if "redis" in needs and not redis_available():
        return "redis-server is not installed"
    if "postgresql" in needs and item.backend != "postgresql":
        return "PostgreSQL only (set TEST_DATABASE_URL to run it)"
    return None


class Runner:
    """Runs the planned items against a started `Stack`."""

    def __init__(self, stack: Stack, events: EventLog, seed: int) -> None:
        self.stack = stack
        self.events = events
        self.seed = seed
        self.ids = Ids(random.Random(seed))
        #: Games whose tasks earlier scenarios started (theirs, not "unexpected" here).
        self.claimed: set[int] = set()
        #: Results so far (what an interrupted run still reports).
        self.results: list[ScenarioResult] = []
        self.interrupted = False

    async def run(self, items: list[Item]) -> list[ScenarioResult]:
        """Run every item; stops early only when interrupted."""
        for item in items:
            result = await self.run_one(item)
            self.results.append(result)
            if result.interrupted:
                break
        return self.results

    async def run_one(self, item: Item) -> ScenarioResult:
        """One scenario: reset upstreams, get its deployment, run it."""
        self.events.scenario = item.name
        reason = _skip_reason(item, self.stack)
        if reason is not None:
            self.events.emit("scenario_skipped", reason=reason)
            return skipped(item.scenario, item.name, reason, item.backend)
        seed = derive_seed(self.seed, item.name)
        self.stack.reset_upstreams(seed)
        env = dict(item.scenario.service_env)
        if "sentry" in item.scenario.requires:
            self.stack.sentry.reset()
            env = self.stack.sentry.service_env() | env
        try:
            deployment = await self.stack.deployment(item.deployment, item.name, env=env)
        except HarnessError as exc:
            self.events.emit("harness_error", error=str(exc))
            result = skipped(item.scenario, item.name, str(exc), item.backend)
            result.verdict, result.reason = "error", str(exc)
            result.journal.update(status="failed", skipped=False)
            return result
        self.events.emit(
            "deployment",
            label=deployment.name,
            urls=[c.url for c in deployment.clients],
            pids=[p.process.pid for p in deployment.processes if p.process is not None],
        )
        watcher = BreakerWatcher(deployment.clients, self.events)
        await watcher.poll()
        watcher.start()
        context = Context(
            name=item.name,
            seed=seed,
            run_seed=self.seed,
            stack=self.stack,
            deployment=deployment,
            events=self.events,
            ids=self.ids,
            sampler=PublicSampler(deployment.clients, self.events),
            watcher=watcher,
            claimed=self.claimed,
        )
        context.state["backend"] = item.backend
        try:
            result = await run_scenario(item.scenario, context, backend=item.backend)
        finally:
            await watcher.stop()
            self.claimed |= context.expected_tasks | context.optional_tasks
            await self.stack.release(item.name)
        result.figures.setdefault("bgg_requests", self.stack.bgg.log.counters()["total"])
        if deployment.processes:
            result.figures["service_start_s"] = round(
                max(p.started_in or 0.0 for p in deployment.processes), 2
            )
        return result
