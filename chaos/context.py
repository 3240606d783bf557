"""What a scenario's activities work with: the service, the fakes, the proxies, the clock.

One `Context` per scenario. Besides handles it keeps the scenario's bookkeeping: the games
whose thumbnail tasks it started (for the set checker), the figures it measured (for
`summary.json`), scratch state passed from one activity to the next, and the event log.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chaos.client import BGG_BREAKER, Call, ServiceClient
from chaos.events import EventLog
from chaos.events import parse_time as parse_time  # the scenarios import it from here
from chaos.fakes import BggApp, CdnApp, FaultRule
from chaos.fakes.bgg import FIXTURE_IDS
from chaos.proxy import ProxyServer
from chaos.stack import Deployment, Stack
from chaos.watch import BreakerWatcher, PublicSampler

#: Ids of games the fake BGG knows (1..2,000,000) and of ones it does not.
KNOWN_IDS = range(100_000, 1_900_000)
UNKNOWN_BASE = 5_000_000


class Skip(Exception):
    """An activity that cannot run here (e.g. against `--target`): recorded, not judged."""


@dataclass
class Ids:
    """Fresh BGG ids, derived from the seed, never repeated within a run."""

    rng: random.Random
    #: The real fixtures' ids are never handed out: the fake answers them from the files.
    used: set[int] = field(default_factory=lambda: set(FIXTURE_IDS))

    def fresh(self) -> int:
        """A known id not handed out before in this run."""
        while True:
            candidate = self.rng.randrange(KNOWN_IDS.start, KNOWN_IDS.stop)
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate

    def unknown(self) -> int:
        """An id the fake BGG answers with an empty `<items>` (not found)."""
        return UNKNOWN_BASE + self.rng.randrange(1_000_000)


class Context:
    """Handles and bookkeeping for one scenario run."""

    def __init__(
        self,
        *,
        name: str,
        seed: int,
        stack: Stack,
        deployment: Deployment,
        events: EventLog,
        ids: Ids,
        sampler: PublicSampler,
        watcher: BreakerWatcher,
        claimed: set[int] | None = None,
        run_seed: int | None = None,
    ) -> None:
        self.name = name
        self.seed = seed
        #: The `--seed` the run was given (`seed` is derived from it, or equal to it).
        self.run_seed = seed if run_seed is None else run_seed
        self.rng = random.Random(seed)
        self.stack = stack
        self.deployment = deployment
        self.events = events
        self.ids = ids
        self.sampler = sampler
        self.watcher = watcher
        self.figures: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.expected_tasks: set[int] = set()
        self.optional_tasks: set[int] = set()
        #: Job ids the service answered with (e.g. a bulk import's 202): each must end.
        self.expected_jobs: set[int] = set()
        #: Games of earlier scenarios (only a shared `--target` service has any).
        self.claimed: set[int] = set(claimed or ())
        self.started_at = datetime.now(UTC)
        self.import_calls: list[Call] = []

    # ------------------------------------------------------------------ handles

    @property
    def service(self) -> ServiceClient:
        """The (first) service."""
        return self.deployment.client

    @property
    def clients(self) -> list[ServiceClient]:
        """Every service process of the deployment."""
        return self.deployment.clients

    @property
    def bgg(self) -> BggApp:
        """The fake BGG (its fault engine and request log)."""
        return self.stack.bgg

    @property
    def cdn(self) -> CdnApp:
        """The fake image CDN."""
        return self.stack.cdn

    @property
    def proxies(self) -> ProxyServer:
        """The TCP fault proxy (`bgg`, `cdn`, and `redis` / `pg-*` when started)."""
        return self.stack.proxies

    @property
    def target_mode(self) -> bool:
        """Whether the service is someone else's (`--target`)."""
        return self.stack.options.target is not None

    # ------------------------------------------------------------------ faults

    def fault(self, name: str, on: bool, **details: Any) -> None:
        """Record that a fault was switched on or off (and when: `state["fault_on"]`)."""
        if on:
            self.state["fault_started"] = time.monotonic()
            self.state["fault_started_wall"] = time.time()
        self.events.emit("fault", fault=name, on=on, **details)

    def bgg_faults(self, *rules: FaultRule) -> None:
        """Replace the fake BGG's fault rules."""
        self._faults(self.bgg, rules)

    def cdn_faults(self, *rules: FaultRule) -> None:
        """Replace the fake CDN's fault rules."""
        self._faults(self.cdn, rules)

    def _faults(self, upstream: BggApp | CdnApp, rules: tuple[FaultRule, ...]) -> None:
        upstream.engine.set_rules(rules)
        rule_data = [r.model_dump(exclude_defaults=True) for r in rules]
        self.events.emit("fault_rules", upstream=upstream.name, rules=rule_data)

    def thing_requests(self) -> int:
        """`thing` requests the fake BGG received in this scenario."""
        return self.bgg.log.count(path="/thing")

    # ------------------------------------------------------------------ service calls

    async def import_game(
        self, bgg_id: int | None = None, *, client: ServiceClient | None = None,
        time_limit: float | None = None,
    ) -> Call:  # fmt: skip
        """Import a game (a fresh id by default) and note the task it starts."""
        bgg_id = self.ids.fresh() if bgg_id is None else bgg_id
        call = await (client or self.service).import_game(bgg_id, time_limit=time_limit)
        self.import_calls.append(call)
        body = call.body if isinstance(call.body, dict) else {}
        game_id = body.get("id")
        if isinstance(game_id, int) and body.get("thumbnail_url"):
            (self.expected_tasks if call.status == 201 else self.optional_tasks).add(game_id)
        self.events.emit("import", bgg_id=bgg_id, game_id=game_id, **call.summary())
        return call

    async def imports(self, count: int, *, client: ServiceClient | None = None,
                      time_limit: float | None = None) -> list[Call]:  # fmt: skip
        """`count` imports of fresh ids at once."""
        return list(
            await asyncio.gather(
                *(self.import_game(client=client, time_limit=time_limit) for _ in range(count))
            )
        )

    async def breaker(
        self, name: str = BGG_BREAKER, *, client: ServiceClient | None = None
    ) -> dict[str, Any]:
        """A breaker's status as the service reports it."""
        return await (client or self.service).breaker(name)

    def expect_jobs(self, job_ids: Any) -> None:
        """Add job ids the service said it accepted: the job check expects each to end
        done or failed with its failure row (see `chaos.checker`)."""
        self.expected_jobs.update(int(job_id) for job_id in job_ids)

    def note(self, **figures: Any) -> None:
        """Add measured figures for `summary.json`."""
        self.figures.update(figures)
