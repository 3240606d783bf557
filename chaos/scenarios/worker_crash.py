"""worker_crash: two job worker processes share the queue, and one dies mid-download.

The deployment is an API-only `serve` (`BACKGROUND_WORKERS_IN_PROCESS=false`) and two
`python -m system worker` processes on its database (`chaos.stack`, kind `workers`). The CDN
holds the first download of each image for 2.5 s, so both workers hold running jobs; then
the one holding the most (A) gets SIGKILL: no drain, no hand-back, its leases simply stop
being renewed.

Promises (issue 11, docs/design/0001-job-queue.md decision 11): the other worker (B) takes
each of A's jobs over once its lease expires and finishes it within `JOB_LEASE_SECONDS` +
`JOB_POLL_SECONDS` + 2 s of the kill; each such job ends with `attempts` 2 and
`lease_expiries` 1 and exactly one run row (A died before recording); the job check finds
nothing lost or doubled.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

from chaos.context import Context, Skip
from chaos.core import Hypothesis, Scenario, SteadyProbe, action, at_most, equals, probe
from chaos.scenarios import common, jobs
from chaos.service import ServiceProcess
from chaos.stats import rounded

IMPORTS = 6  # under the two workers' 8 slots: every download is claimed at once
CDN_DELAY = 2.5  # under the lease: B's own downloads end before A's leases expire
#: The promise: a dead worker's job is finished by another within lease + poll + 2 s.
TAKEOVER_BOUND = jobs.LEASE + jobs.POLL + 2


def _workers(ctx: Context) -> list[ServiceProcess]:
    workers = ctx.deployment.processes[1:]
    if len(workers) != 2:
        raise Skip("needs the API process and two worker processes of the harness's own")
    return workers


def _owner_pid(job: dict[str, Any]) -> int | None:
    """The process id in a lease owner (`<host>:<pid>:<hex>`, system/tasks/pool.py)."""
    owner = job.get("lease_owner")
    if not isinstance(owner, str) or owner.count(":") < 2:
        return None
    try:
        return int(owner.rsplit(":", 2)[1])
    except ValueError:
        return None


async def service_ready(ctx: Context) -> dict[str, Any]:
    """The API answers ready, and both workers are alive."""
    ready = (await ctx.service.ready()).status
    alive = [w.running() for w in ctx.deployment.processes[1:]]
    return {"ready": ready, "workers_alive": alive, "ok": ready == 200 and alive == [True, True]}


READY = SteadyProbe(
    probe(
        "api-and-two-workers-up",
        service_ready,
        equals(True, "ok"),
        promise="the API answers ready and both worker processes run",
    )
)


async def cdn_slow(ctx: Context) -> dict[str, Any]:
    """The first download of each image takes 2.5 s (a take-over's download is not held)."""
    return jobs.slow_cdn(ctx, CDN_DELAY, first_n=IMPORTS)


async def imports_accepted(ctx: Context) -> dict[str, Any]:
    """New games through the API process: each queues its download for the workers."""
    return await jobs.imports(ctx, IMPORTS)


async def kill_worker_a(ctx: Context) -> dict[str, Any]:
    """When every download has reached the CDN, SIGKILL the worker holding the most jobs."""
    workers = _workers(ctx)
    pids = {w.pid: w for w in workers}

    def all_running(rows: list[dict[str, Any]]) -> bool:
        return (
            len(rows) == IMPORTS
            and all(j.get("status") == "running" for j in rows)
            and ctx.cdn.log.count(rule=jobs.SLOW_RULE) >= IMPORTS
        )

    rows, seen = await jobs.wait_for(ctx, all_running, bound=5, interval=0.05)
    held = Counter(pid for pid in map(_owner_pid, rows) if pid in pids)
    if not held:
        return {"seen": seen, "held": {}, "killed_holding_jobs": False}
    victim_pid, _ = held.most_common(1)[0]
    victim = pids[victim_pid]
    ctx.fault("sigkill-worker", True, pid=victim_pid, worker=victim.name)
    victim.send(signal.SIGKILL)
    ctx.state["killed_at"] = time.monotonic()
    code = await asyncio.to_thread(victim.wait_exit, 5)
    after = await jobs.thumbnail_jobs(ctx)
    orphaned = [
        int(j["id"]) for j in after if j.get("status") == "running" and _owner_pid(j) == victim_pid
    ]
    ctx.state["orphaned"] = orphaned
    return {
        "seen_all_running": seen,
        "held_by_pid": {str(pid): n for pid, n in held.items()},
        "killed": victim.name,
        "exit_code": code,
        "orphaned_jobs": orphaned,
        "killed_holding_jobs": bool(orphaned),
    }


async def taken_over(ctx: Context) -> dict[str, Any]:
    """Wait until each of A's jobs is done; when each ended, counted from the kill."""
    orphaned: list[int] = ctx.state.get("orphaned", [])
    killed_at: float = ctx.state.get("killed_at", time.monotonic())
    ended: dict[int, float] = {}
    rows: list[dict[str, Any]] = []
    deadline = killed_at + TAKEOVER_BOUND + 10
    while orphaned and len(ended) < len(orphaned) and time.monotonic() < deadline:
        rows = await jobs.thumbnail_jobs(ctx)
        for job in rows:
            job_id = int(job["id"])
            if job_id in orphaned and job_id not in ended and job.get("status") == "done":
                ended[job_id] = time.monotonic() - killed_at
        await asyncio.sleep(0.05)
    rows = await jobs.thumbnail_jobs(ctx)
    by_id = {int(j["id"]): j for j in rows}
    runs = (await jobs.backend(ctx).read()).runs
    runs_per_job = Counter(r.get("job_id") for r in runs if r.get("job_id") in orphaned)
    output = {
        "orphaned": len(orphaned),
        "done": len(ended),
        "slowest_s": rounded(max(ended.values()), 2)
        if orphaned and len(ended) == len(orphaned)
        else None,
        "bound_s": TAKEOVER_BOUND,
        "attempts_expiries": {
            str(k): [by_id[k].get("attempts"), by_id[k].get("lease_expiries")]
            for k in orphaned
            if k in by_id
        },
        "runs_per_job": {str(k): runs_per_job.get(k, 0) for k in orphaned},
    }
    output["each_attempt_2_expiry_1"] = bool(orphaned) and all(
        by_id.get(k, {}).get("attempts") == 2 and by_id.get(k, {}).get("lease_expiries") == 1
        for k in orphaned
    )
    output["one_run_each"] = bool(orphaned) and all(runs_per_job.get(k) == 1 for k in orphaned)
    ctx.state["taken_over"] = output
    return output


async def restart_workers(ctx: Context) -> dict[str, Any]:
    """Start again any worker that is not running (the killed one), as its supervisor would."""
    restarted = []
    for worker in ctx.deployment.processes[1:]:
        if not worker.running():
            await asyncio.to_thread(worker.stop)  # reap the dead process group
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            restarted.append(worker.name)
    ctx.fault("sigkill-worker", False, restarted=restarted)
    return {"restarted": restarted}


async def taken_over_seen(ctx: Context) -> dict[str, Any]:
    """From `taken_over`."""
    return dict(ctx.state.get("taken_over", {}))


SCENARIO = Scenario(
    name="worker_crash",
    title="One of two job workers is killed mid-download: the other finishes its jobs",
    fault="SIGKILL to the worker process holding the most running jobs",
    description=__doc__ or "",
    tags=("jobs", "workers", "crash", "leases", "durability"),
    hypothesis=Hypothesis(
        "The API and both workers are up, and no job is in progress",
        (READY, common.PUBLIC_API_AROUND, jobs.SETTLED),
    ),
    method=(
        action("cdn-slow", cdn_slow),
        probe(
            "imports-accepted",
            imports_accepted,
            equals(True, "all_created"),
            promise=f"{IMPORTS} imports through the API-only process answer 201",
        ),
        probe(
            "worker-killed-holding-jobs",
            kill_worker_a,
            equals(True, "killed_holding_jobs"),
            promise="both workers claim downloads; the killed one leaves its jobs leased",
        ),
        probe(
            "other-worker-finishes-them",
            taken_over,
            at_most(TAKEOVER_BOUND, "slowest_s", "s"),
            promise=(
                "the other worker finishes each of them within JOB_LEASE_SECONDS + "
                f"JOB_POLL_SECONDS + 2 s of the kill ({TAKEOVER_BOUND:g} s)"
            ),
        ),
        probe(
            "taken-over-once",
            taken_over_seen,
            equals(True, "each_attempt_2_expiry_1"),
            promise="each such job ends with attempts 2 and lease_expiries 1",
        ),
        probe(
            "one-run-per-job",
            taken_over_seen,
            equals(True, "one_run_each"),
            promise="each such job has exactly one run row (the dead worker recorded none)",
        ),
    ),
    rollbacks=(common.RESTORE, action("restart-killed-worker", restart_workers)),
    service="workers",
    service_env=jobs.SERVICE_ENV,
    requires=frozenset({"restart", "two_workers"}),
)
