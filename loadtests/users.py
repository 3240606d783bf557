"""The simulated audiences, one `FastHttpUser` class each.

- `PublicVisitor`, anyone browsing the catalogue (most of the traffic): list 4, search 3,
  detail 4 (task weights);
- `Admin`, an operator watching the service: breaker status 3, all breakers 1, background
  failures 1;
- `Importer`, an admin importing from BGG (the only BGG-dependent traffic): import;
- `HealthProbe`, the platform's liveness/readiness checks (a fixed count, not weighted):
  /health 4, /health/ready 1.

Class weights, think times and the probe count come from the options in `settings.py`
(`--public-weight`, `--public-wait`, ...), applied at start by `hooks.py`. Every request has a
stable `name=` from `names.py`. Importers pick random BGG ids and, on purpose, do not wait for
`Retry-After`: they keep the open breaker's rejection path under load.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlencode

from locust import FastHttpUser, task
from locust.env import Environment

from loadtests import names
from loadtests.outcomes import BreakerBelief, classify_import
from loadtests.preflight import available_routes
from loadtests.settings import ADMIN_TOKEN_ENV, option_value, parse_id_range, parse_range

SORTS = ("title", "-year", "rank", "-created", "year")
PAGE = 20


def think(dest: str) -> Callable[[Any], float]:
    """A `wait_time` reading the think-time option `dest` ("MIN-MAX" seconds) on every call."""

    def wait_time(user: Any) -> float:
        low, high = parse_range(option_value(user.environment.parsed_options, dest))
        return random.uniform(low, high)

    return wait_time


def _admin_headers() -> dict[str, str]:
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    return {"Authorization": f"Bearer {token}"} if token else {}


class LoadUser(FastHttpUser):
    """Base class: the run's patience (`--request-timeout`) as connect and network timeout."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        patience = float(option_value(environment.parsed_options, "request_timeout"))
        self.network_timeout = patience
        self.connection_timeout = patience
        super().__init__(environment)


class PublicVisitor(LoadUser):
    """Lists pages in several orders, searches titles, opens games it has seen in a list."""

    weight = 8
    wait_time = think("public_wait")

    def on_start(self) -> None:
        self.seen: list[int] = []
        self.total = 0

    @task(4)
    def browse(self) -> None:
        offset = random.randint(0, max(0, self.total - PAGE))
        query = urlencode({"limit": PAGE, "offset": offset, "sort": random.choice(SORTS)})
        with self.client.get(
            f"/api/public/games?{query}", name=names.PUBLIC_LIST, catch_response=True
        ) as response:
            if response.status_code != 200:
                return  # Locust records the bad status itself
            try:
                page = json.loads(response.content or b"")
                items, total = page["items"], int(page["total"])
            except (ValueError, KeyError, TypeError):
                response.failure("the page is not {items, total} JSON")
                return
            self.total = total
            ids = [int(item["id"]) for item in items if isinstance(item, dict) and "id" in item]
            self.seen = (self.seen + ids)[-200:]

    @task(3)
    def search(self) -> None:
        terms = str(option_value(self.environment.parsed_options, "search_terms")).split(",")
        query = urlencode({"q": random.choice(terms), "limit": PAGE})
        self.client.get(f"/api/public/games?{query}", name=names.PUBLIC_SEARCH)

    @task(4)
    def detail(self) -> None:
        if not self.seen:
            self.browse()
            return
        game_id = random.choice(self.seen)
        self.client.get(f"/api/public/games/{game_id}", name=names.PUBLIC_DETAIL)


class Admin(LoadUser):
    """Watches the breakers and, where the service has it, the background-failure list."""

    weight = 1
    wait_time = think("admin_wait")
    routes: ClassVar[frozenset[str] | None] = None
    """The target's routes (from /openapi.json), looked up once per process."""

    def on_start(self) -> None:
        self.headers = _admin_headers()
        if Admin.routes is None and self.host:
            Admin.routes = available_routes(self.host) or frozenset()

    @task(3)
    def breaker_status(self) -> None:
        with self.client.get(
            names.BREAKER_STATUS,
            name=names.BREAKER_STATUS,
            headers=self.headers,
            catch_response=True,
        ) as response:
            if response.status_code == 200 and b'"state"' not in (response.content or b""):
                response.failure("no breaker state in the answer")

    @task(1)
    def breakers(self) -> None:
        self.client.get(names.BREAKERS, name=names.BREAKERS, headers=self.headers)

    @task(1)
    def background_failures(self) -> None:
        if names.BACKGROUND_FAILURES not in (Admin.routes or ()):
            self.breaker_status()  # the route is not there (yet): keep the mix's rate
            return
        self.client.get(
            f"{names.BACKGROUND_FAILURES}?limit=50&resolved=false",
            name=names.BACKGROUND_FAILURES,
            headers=self.headers,
        )


class Importer(LoadUser):
    """Imports random BGG ids. See `outcomes.classify_import` for what counts as a success."""

    weight = 3
    wait_time = think("importer_wait")
    belief: ClassVar[BreakerBelief] = BreakerBelief()
    """Shared by the importers of this process."""

    def on_start(self) -> None:
        self.headers = _admin_headers()

    @task
    def import_game(self) -> None:
        parsed = self.environment.parsed_options
        low, high = parse_id_range(option_value(parsed, "import_ids"))
        separate = option_value(parsed, "opening_rejections") == "separate"
        bgg_id = random.randint(low, high)
        sent_known_open = Importer.belief.known_open
        with self.client.post(
            f"/api/admin/games/import/{bgg_id}",
            name=names.IMPORT,
            headers=self.headers,
            catch_response=True,
        ) as response:
            status = response.status_code or None
            headers = dict(response.headers.items()) if response.headers else {}
            outcome = classify_import(
                status,
                headers,
                response.content or b"",
                sent_known_open=sent_known_open,
                separate_opening=separate,
            )
            Importer.belief.observe(outcome, sent_known_open=sent_known_open)
            response.request_meta["name"] = outcome.name
            if outcome.ok:
                response.success()
            elif status is not None:  # no answer: keep Locust's own error (timeout, reset)
                response.failure(outcome.reason)


class HealthProbe(LoadUser):
    """A load balancer's probes: a fixed number of them (`--probe-users`), not weighted."""

    fixed_count = 1
    wait_time = think("probe_wait")

    @task(4)
    def health(self) -> None:
        self.client.get(names.HEALTH, name=names.HEALTH)

    @task(1)
    def ready(self) -> None:
        self.client.get(names.READY, name=names.READY)
