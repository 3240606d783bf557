"""Probes for thumbnail downloads under CDN faults (cdn_outage, cdn_slow).

They read the task tables directly when the harness can (its own services, or `--target`
with `--database-url`), and otherwise the monitoring API (`background-failures`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chaos.checker import TASK_TYPE
from chaos.client import BGG_BREAKER, Call
from chaos.context import Context, Skip
from chaos.core import equals, probe
from chaos.promises import HARNESS, SPEC

#: How the service names a failure the open Image CDN breaker caused (README).
BREAKER_OPEN = "CircuitBreakerOpen"


def _remember(ctx: Context, calls: list[Call]) -> set[int]:
    games = {c.body["id"] for c in calls if c.status == 201 and isinstance(c.body, dict)}
    ctx.state.setdefault("games", set()).update(games)
    return games


async def imports_unaffected(ctx: Context, count: int) -> dict[str, Any]:
    """`count` imports while the CDN is broken: BGG is fine, so they must all be created."""
    calls = await ctx.imports(count, time_limit=HARNESS.deadline + 3)
    _remember(ctx, calls)
    created = all(c.status == 201 for c in calls)
    return {"statuses": sorted({c.status for c in calls}), "all_created": created}


async def lone_download(ctx: Context) -> dict[str, Any]:
    """One import, alone: its download meets the fault on every attempt (3 < fail_max 5,
    so the Image CDN breaker stays closed and the retry policy runs to its end)."""
    games = _remember(ctx, [await ctx.import_game(time_limit=HARNESS.deadline + 3)])
    deadline = time.monotonic() + 3 * (HARNESS.thumbnail_timeout + HARNESS.thumbnail_max_wait) + 5
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not rows:
        rows = [r for r in await _failure_rows(ctx) if r.get("game_id") in games]
        await asyncio.sleep(0.1)
    row = rows[0] if rows else {}
    return {
        "recorded": bool(rows),
        "retry_count": row.get("retry_count"),
        "error_type": row.get("error_type"),
        "three_attempts": row.get("retry_count") == SPEC.thumbnail_attempts
        and row.get("error_type") != BREAKER_OPEN,
    }


async def _failure_rows(ctx: Context) -> list[dict[str, Any]]:
    """Failure rows of this scenario's games (table, or the monitoring API)."""
    games: set[int] = ctx.state.get("games", set())
    backend = ctx.deployment.backend
    if backend is not None:
        rows = (await backend.read()).failures
    else:
        call = await ctx.service.background_failures(task_type=TASK_TYPE, limit=500)
        if call.status != 200 or not isinstance(call.body, dict):
            raise Skip(f"no database access and background-failures answered {call.status}")
        rows = list(call.body.get("failures", []))
    return [r for r in rows if r.get("game_id") in games and r.get("task_type") == TASK_TYPE]


async def failures_recorded(ctx: Context) -> dict[str, Any]:
    """Wait until every game has its failure row (bounded), then describe them."""
    games: set[int] = ctx.state.get("games", set())
    deadline = time.monotonic() + 3 * (HARNESS.thumbnail_timeout + HARNESS.thumbnail_max_wait) + 8
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = await _failure_rows(ctx)
        if {r.get("game_id") for r in rows} >= games:
            break
        await asyncio.sleep(0.2)
    per_game: dict[Any, int] = {}
    for row in rows:
        per_game[row.get("game_id")] = per_game.get(row.get("game_id"), 0) + 1
    network = [r for r in rows if r.get("error_type") != BREAKER_OPEN]
    ctx.note(thumbnail_failures=len(rows), rejected_by_cdn_breaker=len(rows) - len(network))
    output = {
        "tasks": len(games),
        "with_failure_row": len(per_game),
        "max_rows_per_task": max(per_game.values(), default=0),
        "one_row_each": bool(games)
        and len(per_game) == len(games)
        and set(per_game.values()) <= {1},
        "network_failures": len(network),
        "rejected_by_open_breaker": len(rows) - len(network),
        "error_types": sorted({str(r.get("error_type")) for r in rows}),
        "retry_counts": sorted({int(r.get("retry_count") or 0) for r in network}),
    }
    ctx.state["failures"] = output
    return output


async def bgg_breaker_untouched(ctx: Context) -> dict[str, Any]:
    """The BGG breaker is closed and counted nothing."""
    status = await ctx.breaker(BGG_BREAKER)
    return {
        "state": status.get("state"),
        "failure_count": status.get("failure_count"),
        "untouched": status.get("state") == "closed" and status.get("failure_count") == 0,
    }


async def auto_retry_resolves(ctx: Context) -> dict[str, Any]:
    """After the CDN is back: wait (bounded) until the service resolved every failure itself."""
    bound = HARNESS.cdn_breaker_reset_timeout + 4 * HARNESS.recovery_check + 6
    deadline = time.monotonic() + bound
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = await _failure_rows(ctx)
        if rows and all(r.get("resolved") for r in rows):
            break
        if not rows and not ctx.state.get("games"):
            break  # no task was started, so there is nothing to wait for
        await asyncio.sleep(0.25)
    unresolved = sum(1 for r in rows if not r.get("resolved"))
    hint = None
    if not rows:
        hint = "no failure rows to resolve: the outage left no record"
    elif unresolved:
        hint = "no automatic retry (AUTO_RETRY_MAX) resolved them"
    return {
        "failures": len(rows),
        "resolved": len(rows) - unresolved,
        "unresolved": unresolved,
        # Nothing recorded is nothing resolved: this never holds vacuously.
        "all_resolved": bool(rows) and unresolved == 0,
        "waited_bound_s": bound,
        "hint": hint,
    }


IMPORTS_UNAFFECTED = "imports-unaffected"
ONE_ROW_EACH = probe(
    "one-failure-row-per-task",
    failures_recorded,
    equals(True, "one_row_each"),
    promise="every failed download leaves exactly one failure row",
)
THREE_ATTEMPTS = probe(
    "lone-download-fails-after-3-attempts",
    lone_download,
    equals(True, "three_attempts"),
    promise=(
        f"a download failing on timeouts/network errors is tried {SPEC.thumbnail_attempts} "
        "times (retry_count), the spec's policy"
    ),
)
BGG_UNTOUCHED = probe(
    "bgg-breaker-untouched",
    bgg_breaker_untouched,
    equals(True, "untouched"),
    promise="a CDN outage does not touch the BGG breaker (closed, 0 failures)",
)
AUTO_RETRY = probe(
    "automatic-retry-resolves",
    auto_retry_resolves,
    equals(True, "all_resolved"),
    promise=(
        "after the CDN recovers, the automatic retry resolves every failure of the outage "
        "with no manual call"
    ),
)
