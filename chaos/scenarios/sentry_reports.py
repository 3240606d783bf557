"""sentry_reports: what the service really sends to Sentry, received by a fake ingest.

The service gets a real DSN pointing at `chaos.sentry_ingest` on loopback, so the real SDK
sends what it would send to sentry.io: error events after `before_send`, and the
transactions (and profiles) the traces sampler picks. Its secret settings are known
canaries: the admin token (the harness's own), `BGG_API_TOKEN` and the DSN's key. Traffic:
`HEALTH_CHECKS` requests to `/health` and `/health/ready`, then `ERRORS` imports BGG answers
with an HTML page (a 502 each, reported to Sentry), all with the admin token.

Promises: no item the SDK sends (event, transaction, profile) is about a health check, and
no canary in any form (as is, percent-encoded, JSON- or repr-escaped) is in any of them nor
in the service's log file. Each is judged only once the error events have arrived (the SDK
sends in order, so everything queued before them has been sent too); no event at all is a
failure, not a pass.

A sampler that forgets `/health` samples each health check with 10 %: it goes unseen with
probability 0.9^HEALTH_CHECKS (`missed_health_sampling`, under 1e-9). A correct service
sends nothing for them, so the health hypothesis has no false alarm.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chaos.context import Context, Skip
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS
from chaos.scenarios import common
from chaos.sentry_ingest import BGG_TOKEN, DSN_KEY, Item, leaks
from chaos.stats import rounded

HEALTH_CHECKS = 200
ERRORS = 2
#: The service's traces sample rate (system/observability/sentry.py).
TRACES_SAMPLE_RATE = 0.1
#: How long the reported errors may take to arrive (the SDK sends from a thread of its own).
ARRIVAL_BOUND = 10.0


def missed_health_sampling(checks: int = HEALTH_CHECKS) -> float:
    """P(a sampler that does sample health checks sends none of `checks` of them)."""
    return (1 - TRACES_SAMPLE_RATE) ** checks


def health_items(items: list[Item]) -> list[Item]:
    """The items about a health check (`/health`, `/health/...`)."""
    return [i for i in items if i.path == "/health" or i.path.startswith("/health/")]


def canaries(ctx: Context) -> dict[str, str]:
    """The secret settings the service was given, by name."""
    return {"ADMIN_TOKENS": ctx.stack.token, "BGG_API_TOKEN": BGG_TOKEN, "SENTRY_DSN key": DSN_KEY}


def _errors(items: list[Item]) -> list[Item]:
    return [i for i in items if i.type == "event"]


async def health_checks(ctx: Context) -> dict[str, Any]:
    """`/health` and `/health/ready`, one after the other."""
    ctx.state["sentry_since"] = time.monotonic()
    statuses: dict[str, int] = {}
    for index in range(HEALTH_CHECKS):
        call = await (ctx.service.ready() if index % 4 == 3 else ctx.service.health())
        statuses[str(call.status)] = statuses.get(str(call.status), 0) + 1
    return {"requests": HEALTH_CHECKS, "statuses": statuses}


async def reported_errors(ctx: Context) -> dict[str, Any]:
    """`ERRORS` imports that BGG answers with HTML (502, reported), then wait for their
    events at the ingest."""
    calls = []
    for index in range(ERRORS):
        ctx.bgg_faults(FaultRule(name=f"html-{index}", path="/thing", body="html", first_n=1))
        calls.append(await ctx.import_game(time_limit=HARNESS.deadline + 3))
    ctx.bgg_faults()
    since = ctx.state.get("sentry_since", 0.0)
    deadline = time.monotonic() + ARRIVAL_BOUND
    # Polling: the ingest is a thread that records what arrives; there is nothing to await.
    while len(_errors(ctx.stack.sentry.items(since))) < ERRORS and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    arrived = len(_errors(ctx.stack.sentry.items(since)))
    ctx.state["sentry_reached"] = arrived >= ERRORS
    return {"statuses": [c.status for c in calls], "error_events": arrived}


def _reached(ctx: Context) -> bool:
    if ctx.target_mode:
        raise Skip("needs a service the harness configures (a DSN of its own)")
    return bool(ctx.state.get("sentry_reached"))


async def no_health_events(ctx: Context) -> dict[str, Any]:
    """Every item the ingest received during the scenario, looked at for health checks."""
    reached = _reached(ctx)
    items = ctx.stack.sentry.items(ctx.state.get("sentry_since", 0.0))
    health = health_items(items)
    kinds: dict[str, int] = {}
    for item in items:
        kinds[item.type] = kinds.get(item.type, 0) + 1
    return {
        "items": kinds,
        "health_items": [f"{i.type} {i.path}" for i in health[:10]],
        "miss_if_sampled": float(f"{missed_health_sampling():.3g}"),
        "none_for_health": reached and not health,
    }


async def no_secrets(ctx: Context) -> dict[str, Any]:
    """Every received item, and the service's log file, looked at for each canary."""
    reached = _reached(ctx)
    secrets = canaries(ctx)
    items = ctx.stack.sentry.items(ctx.state.get("sentry_since", 0.0))
    in_items = sorted({f"{name} in {item.type}" for item in items
                       for name in leaks(item.raw, secrets)})  # fmt: skip
    logs = "".join(
        p.log_path.read_text(errors="replace")
        for p in ctx.deployment.processes
        if p.log_path.exists()
    )
    in_logs = leaks(logs, secrets)
    return {
        "canaries": sorted(secrets),
        "items": len(items),
        "log_bytes": len(logs),
        "found_in_reports": in_items,
        "found_in_logs": in_logs,
        "seconds": rounded(time.monotonic() - ctx.state.get("sentry_since", 0.0), 2),
        "clean": reached and not in_items and not in_logs,
    }


SCENARIO = Scenario(
    name="sentry_reports",
    title="What reaches Sentry: nothing about health checks, no secret in any form",
    fault="none: a fake Sentry ingest receives what the real SDK sends (failed imports, 502s)",
    description=__doc__ or "",
    tags=("sentry", "observability", "secrets"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        action("health-checks", health_checks),
        action("reported-errors", reported_errors),
        probe(
            "no-sentry-event-for-health",
            no_health_events,
            equals(True, "none_for_health"),
            promise=f"no event, transaction or profile for any of {HEALTH_CHECKS} health checks "
            f"(a sampler that samples them is missed with p = {missed_health_sampling():.1g})",
        ),
        probe(
            "no-secret-in-reports-or-logs",
            no_secrets,
            equals(True, "clean"),
            promise="no secret setting (admin token, BGG token, DSN key), in any form, in "
            "anything sent to Sentry or in the service's log",
        ),
    ),
    rollbacks=(common.RESTORE,),
    requires=frozenset({"sentry"}),
)
