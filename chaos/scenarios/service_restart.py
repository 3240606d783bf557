"""service_restart: the service is stopped while thumbnail downloads are running and queued, as
every deploy stops it: first SIGTERM (drained), then SIGKILL (a crash), each time restarted
on the same database and spool.

Promises (issue 11, docs/design/0001-job-queue.md decision 11): at SIGTERM the service stops
claiming, gives running jobs `BACKGROUND_DRAIN_SECONDS` and exits 0 within the drain + 5 s,
and every job it did not finish is `queued` again with no attempt spent; after SIGKILL the
jobs it held stay leased until the lease expires, and the restarted service takes them over
(one more attempt, one lease expiry each); in the end all 12 downloads are done, and the
job check finds none lost and none doubled. The queue's timings are short for the run
(lease 3 s, poll 0.5 s, drain 2 s: `chaos.scenarios.jobs`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from chaos.context import Context, Skip
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.scenarios import common, jobs
from chaos.service import ServiceProcess
from chaos.stats import rounded

IMPORTS = 12
#: Longer than the drain, so the SIGTERM always cuts downloads short and the hand-back of a
#: running job is exercised (with 2 s, as long as the drain, every running download could
#: end within it and a drain that dropped its running jobs passed).
CDN_DELAY = 2 * jobs.DRAIN
#: How long the SIGTERM may take: the drain, plus 5 s to close everything else.
EXIT_BOUND = jobs.DRAIN + 5


def _process(ctx: Context) -> ServiceProcess:
    if not ctx.deployment.processes:
        raise Skip("needs a service process of the harness's own to stop")
    return ctx.deployment.processes[0]


async def cdn_slow(ctx: Context) -> dict[str, Any]:
    """Each thumbnail takes 2 s to arrive (within the download timeout): downloads run long."""
    return jobs.slow_cdn(ctx, CDN_DELAY)


async def imports_accepted(ctx: Context) -> dict[str, Any]:
    """12 new games: each import answers 201 and queues its download."""
    return await jobs.imports(ctx, IMPORTS)


async def sigterm_while_busy(ctx: Context) -> dict[str, Any]:
    """Once some downloads run and some wait, SIGTERM the service; time its exit."""
    process = _process(ctx)

    def busy(rows: list[dict[str, Any]]) -> bool:
        counts = jobs.by_status(rows)
        return counts.get("running", 0) > 0 and counts.get("queued", 0) > 0

    rows, seen = await jobs.wait_for(ctx, busy, bound=5)
    ctx.state["running_at_sigterm"] = [int(j["id"]) for j in rows if j.get("status") == "running"]
    ctx.fault("sigterm", True, pid=process.pid)
    started = time.monotonic()
    process.send(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait_exit, EXIT_BOUND + 5)
    seconds = time.monotonic() - started
    if code is None:
        await asyncio.to_thread(process.stop)  # it hung: SIGKILL, so the run goes on
    return {
        "running_and_queued_seen": seen,
        "jobs_at_sigterm": jobs.by_status(rows),
        "exit_code": code,
        "seconds": rounded(seconds, 2),
        "exit_bound_s": EXIT_BOUND,
        "clean_exit": seen and code == 0 and seconds <= EXIT_BOUND,
    }


def judge_hand_back(rows: list[dict[str, Any]], running_at_sigterm: list[int]) -> dict[str, Any]:
    """Every unfinished job queued with no attempt spent, among them at least one that was
    running at the SIGTERM (the drain cut it short): the hand-back itself, not only jobs
    that were never claimed."""
    unfinished = [job for job in rows if job.get("status") not in ("done", "failed")]
    wrong = [
        int(job["id"])
        for job in unfinished
        if job.get("status") != "queued"
        or int(job.get("attempts") or 0) != 0
        or job.get("lease_owner") is not None
    ]
    cut = sorted(int(job["id"]) for job in unfinished if int(job["id"]) in running_at_sigterm)
    return {
        "jobs": len(rows),
        "by_status": jobs.by_status(rows),
        "unfinished": len(unfinished),
        "cut_short_by_the_drain": cut,
        "not_handed_back": wrong,
        # Vacuous unless a running job was cut: a drain that finished everything it had
        # claimed proves nothing about handing back.
        "handed_back": len(rows) == IMPORTS and bool(cut) and not wrong,
    }


async def jobs_handed_back(ctx: Context) -> dict[str, Any]:
    """After the SIGTERM: nothing running, every unfinished job queued, no attempt spent."""
    rows = await jobs.thumbnail_jobs(ctx)
    return judge_hand_back(rows, ctx.state.get("running_at_sigterm", []))


async def restart(ctx: Context) -> dict[str, Any]:
    """Start the service again on the same port, database and spool."""
    process = _process(ctx)
    await asyncio.to_thread(process.stop)  # reap what is left of the old process group
    started = time.monotonic()
    process.start()
    await asyncio.to_thread(process.wait_ready)
    ctx.fault("restart", False, pid=process.pid)
    return {"ready_s": rounded(time.monotonic() - started, 2)}


async def sigkill_while_running(ctx: Context) -> dict[str, Any]:
    """Once the restarted service runs downloads again, SIGKILL it: no drain, no hand-back."""
    process = _process(ctx)

    def running(rows: list[dict[str, Any]]) -> bool:
        return jobs.by_status(rows).get("running", 0) > 0

    _, seen = await jobs.wait_for(ctx, running, bound=5)
    owner_pid = process.pid
    ctx.fault("sigkill", True, pid=owner_pid)
    process.send(signal.SIGKILL)
    code = await asyncio.to_thread(process.wait_exit, 5)
    rows = await jobs.thumbnail_jobs(ctx)
    held = [int(job["id"]) for job in rows if job.get("status") == "running"]
    ctx.state["killed_jobs"] = held
    return {"exit_code": code, "held_jobs": held, "killed_holding_jobs": seen and bool(held)}


async def all_done_measured(ctx: Context) -> dict[str, Any]:
    """After the second restart: every job ends done (bounded), the killed ones taken over;
    kept for the second hypothesis on the same observation (`done_probe`)."""
    killed: list[int] = ctx.state.get("killed_jobs", [])
    # Expired leases, then the downloads left, SLOTS at a time, each CDN_DELAY long.
    bound = jobs.LEASE + jobs.POLL + (IMPORTS / jobs.SLOTS + 1) * CDN_DELAY + 5

    def finished(rows: list[dict[str, Any]]) -> bool:
        return len(rows) == IMPORTS and all(j.get("status") in ("done", "failed") for j in rows)

    started = time.monotonic()
    rows, _ = await jobs.wait_for(ctx, finished, bound=bound, interval=0.2)
    by_id = {int(job["id"]): job for job in rows}
    taken_over = {
        job_id: (by_id[job_id].get("attempts"), by_id[job_id].get("lease_expiries"))
        for job_id in killed
        if job_id in by_id
    }
    done = jobs.by_status(rows).get("done", 0)
    output = {
        "jobs": len(rows),
        "done": done,
        "all_done": len(rows) == IMPORTS and done == IMPORTS,
        "waited_s": rounded(time.monotonic() - started, 2),
        "bound_s": rounded(bound, 2),
        # attempts 2 (the killed claim, then the take-over), lease_expiries 1.
        "killed_attempts_expiries": {str(k): list(v) for k, v in taken_over.items()},
        "taken_over_once": bool(killed)
        and all(
            status == "done" and attempts == 2 and expiries == 1
            for status, (attempts, expiries) in (
                (by_id[k].get("status"), v) for k, v in taken_over.items()
            )
        )
        and len(taken_over) == len(killed),
    }
    ctx.state["done"] = output
    return output


async def done_probe(ctx: Context) -> dict[str, Any]:
    """From `all_done_measured`."""
    return dict(ctx.state.get("done", {}))


SCENARIO = Scenario(
    name="service_restart",
    title="The service is restarted under running and queued downloads: nothing is lost",
    fault="SIGTERM to the service's process group mid-download, restart; then SIGKILL, restart",
    description=__doc__ or "",
    tags=("jobs", "restart", "thumbnails", "durability"),
    hypothesis=Hypothesis(
        "The service is ready, serves the catalogue, and no job is in progress",
        (common.READY, common.PUBLIC_API_AROUND, jobs.SETTLED),
    ),
    method=(
        action("cdn-slow", cdn_slow),
        probe(
            "imports-accepted",
            imports_accepted,
            equals(True, "all_created"),
            promise=f"{IMPORTS} imports answer 201 (each queues its download)",
        ),
        probe(
            "sigterm-exits-cleanly",
            sigterm_while_busy,
            equals(True, "clean_exit"),
            promise=(
                f"SIGTERM with downloads running and queued: the service exits 0 within "
                f"BACKGROUND_DRAIN_SECONDS + 5 s ({EXIT_BOUND:g} s)"
            ),
        ),
        probe(
            "unfinished-jobs-handed-back",
            jobs_handed_back,
            equals(True, "handed_back"),
            promise="every job it did not finish (some cut short by the drain) is queued "
            "again, with no attempt spent",
        ),
        action("restart", restart),
        probe(
            "sigkill-leaves-leased-jobs",
            sigkill_while_running,
            equals(True, "killed_holding_jobs"),
            promise="the restarted service claims the queued jobs; SIGKILL leaves them leased",
        ),
        action("restart-after-kill", restart),
        probe(
            "all-jobs-done",
            all_done_measured,
            equals(True, "all_done"),
            promise=f"after the restarts all {IMPORTS} downloads end done (none lost)",
        ),
        probe(
            "killed-jobs-taken-over",
            done_probe,
            equals(True, "taken_over_once"),
            promise=(
                "each job the killed process held is taken over once its lease expires: "
                "attempts 2, lease_expiries 1, done"
            ),
        ),
    ),
    rollbacks=(common.RESTORE,),
    service_env=jobs.SERVICE_ENV,
    requires=frozenset({"restart"}),
)
