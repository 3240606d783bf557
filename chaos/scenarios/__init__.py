"""The scenario catalogue: one module per scenario, each exposing `SCENARIO`.

The order here is the order of a full run: cheap BGG faults first, then the CDN, processes
stopped under background jobs, the database and the two-worker scenarios that need services
of their own.
"""

from __future__ import annotations

import importlib

from chaos.core import Scenario

NAMES: tuple[str, ...] = (
    "bgg_outage",
    "breaker_self_recovery",
    "bgg_blackhole",
    "network_errors",
    "bgg_flaky",
    "bgg_retry_herd",
    "bgg_rate_limited",
    "bgg_queued",
    "bgg_bad_answers",
    "sentry_reports",
    "cdn_outage",
    "cdn_slow",
    "bulk_import_outage",
    "service_restart",
    "worker_crash",
    "database_outage",
    "database_failover",
    "shared_breaker",
    "redis_outage",
)


def load(name: str) -> Scenario:
    """The scenario called `name` (KeyError when there is none)."""
    if name not in NAMES:
        raise KeyError(name)
    module = importlib.import_module(f"chaos.scenarios.{name}")
    scenario: Scenario = module.SCENARIO
    return scenario


def load_all() -> list[Scenario]:
    """Every scenario, in run order."""
    return [load(name) for name in NAMES]
