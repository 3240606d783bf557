"""Helpers for the scenarios that stop processes under background jobs (service_restart,
worker_crash): the job table read from outside, a slow CDN that keeps downloads running, and
the short queue settings that make a crash recover in seconds.

The job rows are read directly from the database (`chaos.database`), never through the
service: a service that lost its jobs must not be the one to say so.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chaos.context import Context, Skip
from chaos.core import SteadyProbe, equals, probe
from chaos.fakes import FaultRule

#: The queue's timings the harness gives these scenarios' services (seconds).
LEASE = 3.0
LEASE_MARGIN = 1.0  # under half the lease (the service refuses more)
POLL = 0.5
DRAIN = 2.0
SLOTS = 4


def queue_env(slots: int) -> tuple[tuple[str, str], ...]:
    """The queue's short timings above, with `slots` jobs per process."""
    return (
        ("JOB_LEASE_SECONDS", f"{LEASE:g}"),
        ("JOB_LEASE_MARGIN_SECONDS", f"{LEASE_MARGIN:g}"),
        ("JOB_POLL_SECONDS", f"{POLL:g}"),
        ("BACKGROUND_DRAIN_SECONDS", f"{DRAIN:g}"),
        ("BACKGROUND_CONCURRENCY", str(slots)),
    )


#: The settings themselves, on top of the harness's. THUMBNAIL_TIMEOUT is the service's
#: default again (the harness's 0.5 s would time a slow download out instead of keeping it
#: running, which these scenarios need).
SERVICE_ENV: tuple[tuple[str, str], ...] = (*queue_env(SLOTS), ("THUMBNAIL_TIMEOUT", "10"))
SLOW_RULE = "slow-cdn"


def backend(ctx: Context) -> Any:
    """The database, which these scenarios must read (not possible against `--target`
    without `--database-url`)."""
    found = ctx.deployment.backend
    if found is None:
        raise Skip("needs database access to read the job table")
    return found


async def thumbnail_jobs(ctx: Context) -> list[dict[str, Any]]:
    """The job rows of this scenario's games (their `thumbnail_download` jobs), by id."""
    return (await _read_jobs(ctx))[0]


async def _read_jobs(ctx: Context) -> tuple[list[dict[str, Any]], bool]:
    games: set[int] = ctx.state.get("games", set())
    rows = await backend(ctx).read()
    jobs = [
        job
        for job in rows.jobs
        if isinstance(job.get("payload"), dict) and job["payload"].get("game_id") in games
    ]
    return sorted(jobs, key=lambda job: int(job["id"])), rows.has_jobs


def by_status(jobs: list[dict[str, Any]]) -> dict[str, int]:
    """How many jobs are in each status."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[str(job.get("status"))] = counts.get(str(job.get("status")), 0) + 1
    return counts


def slow_cdn(ctx: Context, delay: float, first_n: int | None = None) -> dict[str, Any]:
    """Every image request (or the first `first_n`) answers after `delay` s, correctly."""
    ctx.cdn_faults(FaultRule(name=SLOW_RULE, path="/images/*", delay=delay, first_n=first_n))
    ctx.fault("cdn-slow", True, delay_s=delay, first_n=first_n)
    return {"delay_s": delay, "first_n": first_n}


async def imports(ctx: Context, count: int) -> dict[str, Any]:
    """`count` imports (BGG is fine: each must be created, and so queue its download)."""
    calls = await ctx.imports(count, time_limit=8)
    games = {c.body["id"] for c in calls if c.status == 201 and isinstance(c.body, dict)}
    ctx.state.setdefault("games", set()).update(games)
    return {
        "statuses": sorted({c.status for c in calls}),
        "created": len(games),
        "all_created": len(games) == count,
    }


async def wait_for(
    ctx: Context, check: Any, bound: float, interval: float = 0.1
) -> tuple[list[dict[str, Any]], bool]:
    """Read the scenario's jobs until `check(jobs)` holds or `bound` s pass.

    A service without a job table (one from before the queue) shows no job ever: then the
    moment the fault is meant for is "downloads in flight at the CDN", so the fault still
    meets running downloads (and the data check judges what became of them), and the answer
    is False, as the job table could not say so.
    """
    deadline = time.monotonic() + bound
    while True:
        jobs, table = await _read_jobs(ctx)
        if table and check(jobs):
            return jobs, True
        if not table and ctx.cdn.log.counters()["in_flight"] > 0:
            return jobs, False
        if time.monotonic() > deadline:
            return jobs, False
        await asyncio.sleep(interval)


async def jobs_settled(ctx: Context) -> dict[str, Any]:
    """Wait (bounded) until no job of the database is queued and due or running."""
    bound = LEASE + POLL + 15
    deadline = time.monotonic() + bound
    while True:
        rows = await backend(ctx).read()
        now = rows.now
        busy = [
            job
            for job in rows.jobs
            if job.get("status") == "running"
            or (job.get("status") == "queued" and (now is None or job["run_after"] <= now))
        ]
        if not busy or time.monotonic() > deadline:
            return {
                "jobs": len(rows.jobs),
                "busy": len(busy),
                "table": rows.has_jobs,
                "settled": rows.has_jobs and not busy,
            }
        await asyncio.sleep(0.2)


SETTLED = SteadyProbe(
    probe(
        "no-job-in-progress",
        jobs_settled,
        equals(True, "settled"),
        promise="the job table exists and no job is queued-and-due or running",
    )
)
