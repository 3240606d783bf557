"""bulk_import_outage: a bulk import of 200 ids, and BGG goes down mid-way, then comes back.

One `POST /api/admin/games/import` names 200 fresh ids (202: one `bgg_import` job each, all
registered with the job check). The fake BGG answers the first 50 `thing` requests, then 503
to everything, so the outage starts after about 50 games.

Promises (issue 11, docs/design/0001-job-queue.md decision 11): during the outage the BGG
breaker opens; the jobs wait instead of failing: every unfinished job stays queued with no
attempt spent, each one the breaker turned away is handed back with `run_after` ahead of its
hand-back (when the breaker may half-open), and no `bgg_import` failure row ever says the
breaker (`BggUnavailable` / `CircuitBreakerOpen`). Once BGG is back the breaker closes by
itself (the recovery probe or a job's trial) within the reset timeout +
`RECOVERY_CHECK_SECONDS`, and within a bound every id is a game or a `bgg_import` failure row
(a transient error recorded before the breaker opened). Then the automatic retry (a
`Recovery` for BGG re-running unresolved transient `bgg_import` failures when the breaker
closes) turns those into games too: all 200 ids are games and every `bgg_import` failure row
of the run is resolved. The job check: 200 jobs, each done or failed with its failure row,
one game per `bgg_id`, each new game's thumbnail job ended.

The service runs one worker slot (`BACKGROUND_CONCURRENCY=1`), so the outage meets the jobs
one at a time and what it leaves is the same every run: the 51st job spends its 3 attempts on
503s with the breaker still closed and is recorded as `BggTransientError` (a transient failure
recorded before the breaker opened); the 52nd's second 503 is the breaker's 5th failure in a
row, which opens it and stops the client's retries, so that job waits (handed back) like the
148 others the open breaker turns away, and so does a waiting job whose half-open trial meets
the failing BGG. So one failure row: until the service retries `bgg_import` failures
automatically when the BGG breaker closes, the last hypothesis fails (199 games, 1 unresolved
row).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Any

from chaos.context import Context
from chaos.core import Hypothesis, Scenario, action, at_most, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS
from chaos.scenarios import common, jobs
from chaos.stats import rounded

IDS = 200
BEFORE_OUTAGE = 50
#: One slot: the outage meets one job at a time (see the docstring). The rest are the job
#: scenarios' short queue timings.
SLOTS = 1
SERVICE_ENV = jobs.queue_env(SLOTS)
#: From the bulk import's 202 to the breaker open, at most: 50 imports and 5 failed requests
#: (about 1.6 s measured); a service whose breaker never opens is not waited on for long.
OPEN_BOUND = 10.0
#: How long the outage lasts once the breaker is open: past one reset timeout and a poll,
#: so a waiting job's trial meets the failing BGG too (and must not burn its attempt).
HOLD = HARNESS.breaker_reset_timeout + 1 + jobs.POLL + 0.5
#: From BGG healing to the status saying closed (as breaker_self_recovery).
CLOSE_BOUND = common.SELF_CLOSE_BOUND
#: From the breaker closing to every id ended (a game or a failure row): the ~150 jobs left
#: with their thumbnails, one slot. Measured at about 6 s on this 2-core machine.
END_BOUND = 20.0
#: From every id ending to the automatic retry having resolved every failure row.
RETRY_BOUND = HARNESS.recovery_check + 5.0
#: What a failure row must never say: the breaker turned the job away (it waits instead).
BREAKER_ERRORS = frozenset({"BggUnavailable", "CircuitBreakerOpen", "CircuitOpenError"})
_URL_ID = re.compile(r"[?&]id=(\d+)")


async def _read(ctx: Context) -> dict[str, Any]:
    """The run's `bgg_import` jobs, games and failure rows, read from the database."""
    rows = await jobs.backend(ctx).read()
    job_ids: set[int] = ctx.expected_jobs
    bgg_ids: set[int] = ctx.state.get("bgg_ids", set())
    mine = [job for job in rows.jobs if int(job["id"]) in job_ids]
    games = {int(g["bgg_id"]): int(g["id"]) for g in rows.games if g.get("bgg_id") in bgg_ids}
    failures = [
        f
        for f in rows.failures
        if f.get("task_type") == "bgg_import"
        and isinstance(f.get("created_at"), datetime)
        and f["created_at"] >= ctx.started_at
    ]
    return {"jobs": mine, "games": games, "failures": failures, "now": rows.now, "rows": rows}


def _failed_ids(state: dict[str, Any]) -> set[int]:
    """The bgg_ids with a `bgg_import` failure row (by the request URL in the row)."""
    found = set()
    for failure in state["failures"]:
        match = _URL_ID.search(str(failure.get("url") or ""))
        if match:
            found.add(int(match.group(1)))
    return found


async def bgg_fails_after_50(ctx: Context) -> dict[str, Any]:
    """The first 50 `thing` requests are answered; every later one gets a 503."""
    ctx.bgg_faults(
        FaultRule(name="before-outage", path="/thing", first_n=BEFORE_OUTAGE),
        FaultRule(name="outage", path="/thing", status=503),
    )
    ctx.fault("bgg-503-after-50", True, answered_first=BEFORE_OUTAGE)
    return {"answered_first": BEFORE_OUTAGE, "then": 503}


async def bulk_accepted(ctx: Context) -> dict[str, Any]:
    """One bulk import of 200 fresh ids: 202 with a job per id, each registered."""
    bgg_ids = [ctx.ids.fresh() for _ in range(IDS)]
    ctx.state["bgg_ids"] = set(bgg_ids)
    call = await ctx.service.bulk_import(bgg_ids, time_limit=10)
    body = call.body if isinstance(call.body, dict) else {}
    listed = body.get("jobs")
    if not isinstance(listed, list):
        listed = []
    job_ids = {int(j["job_id"]) for j in listed if isinstance(j, dict) and "job_id" in j}
    ctx.expect_jobs(job_ids)
    ctx.events.emit("bulk_import", ids=len(bgg_ids), **call.summary())
    return {
        "status": call.status,
        "jobs": len(job_ids),
        "accepted": call.status == 202 and len(job_ids) == IDS,
    }


async def breaker_opens(ctx: Context) -> dict[str, Any]:
    """Wait (bounded) for the BGG breaker to report open; how far the import had got."""
    deadline = time.monotonic() + OPEN_BOUND
    status = await ctx.breaker()
    while status.get("state") != "open" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = await ctx.breaker()
    opened = status.get("state") == "open"
    state = await _read(ctx)
    if opened:
        common.note_mttd(ctx, status)
    return {
        "state": status.get("state"),
        "opened": opened,
        "games_at_open": len(state["games"]),
        "failure_rows_at_open": len(state["failures"]),
    }


async def jobs_wait(ctx: Context) -> dict[str, Any]:
    """Watch the jobs for `HOLD` s of open breaker (BGG still failing): each unfinished job
    stays queued with no attempt spent; each hand-back is due after it was made."""
    deadline = time.monotonic() + HOLD
    handed_back: set[int] = set()
    burnt: set[int] = set()
    not_ahead: set[int] = set()
    failed_meanwhile: set[int] = set()
    samples = 0
    opened_seq = ctx.bgg.log.last_seq
    state = await _read(ctx)
    failed_at_open = {int(j["id"]) for j in state["jobs"] if j.get("status") == "failed"}
    while True:
        state = await _read(ctx)
        samples += 1
        for job in state["jobs"]:
            job_id, status = int(job["id"]), job.get("status")
            attempts = int(job.get("attempts") or 0)
            if status == "queued" and attempts != 0:
                burnt.add(job_id)
            if status == "running" and attempts > 1:
                burnt.add(job_id)
            if status == "failed" and job_id not in failed_at_open:
                failed_meanwhile.add(job_id)
            if status == "queued" and job.get("last_error_type") == "breaker_open":
                handed_back.add(job_id)
                run_after, updated = job.get("run_after"), job.get("updated_at")
                if (
                    isinstance(run_after, datetime)
                    and isinstance(updated, datetime)
                    and run_after <= updated
                ):
                    not_ahead.add(job_id)
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    counts = jobs.by_status(state["jobs"])
    return {
        "samples": samples,
        "by_status": counts,
        "handed_back": len(handed_back),
        "burnt_attempts": sorted(burnt)[:20],
        "run_after_not_ahead": sorted(not_ahead)[:20],
        "failed_while_open": sorted(failed_meanwhile)[:20],
        "trial_requests": len(ctx.bgg.log.records(since=opened_seq, path="/thing")),
        "waiting": bool(handed_back) and not burnt and not not_ahead and not failed_meanwhile,
    }


async def no_breaker_failures(ctx: Context) -> dict[str, Any]:
    """`bgg_import` failure rows of this run, by error type; those naming the breaker."""
    state = await _read(ctx)
    types: dict[str, int] = {}
    for failure in state["failures"]:
        key = str(failure.get("error_type"))
        types[key] = types.get(key, 0) + 1
    return {
        "failure_rows": len(state["failures"]),
        "by_error_type": types,
        "breaker_failure_rows": sum(n for k, n in types.items() if k in BREAKER_ERRORS),
    }


async def bgg_recovers(ctx: Context) -> dict[str, Any]:
    """BGG answers normally again."""
    ctx.bgg_faults()
    ctx.fault("bgg-503-after-50", False)
    ctx.state["healed_mono"] = time.monotonic()
    return {"status": 200}


async def breaker_closes(ctx: Context) -> dict[str, Any]:
    """Poll the status until it says closed (bounded); the seconds from healing."""
    state, closed_after = await common.closed_after_healing(ctx, grace=5)
    ctx.state["closed_mono"] = time.monotonic()
    ctx.note(close_after_heal_s=rounded(closed_after, 3))
    return {"state": state, "closed_after_s": rounded(closed_after, 3), "bound_s": CLOSE_BOUND}


async def every_id_ended(ctx: Context) -> dict[str, Any]:
    """Wait (bounded) until each id is a game or has a `bgg_import` failure row."""
    since = float(ctx.state.get("closed_mono", time.monotonic()))
    bgg_ids: set[int] = ctx.state.get("bgg_ids", set())
    deadline = since + END_BOUND + 5
    while True:
        state = await _read(ctx)
        failed = _failed_ids(state) & bgg_ids
        open_ids = bgg_ids - set(state["games"]) - failed
        if not open_ids or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    ended_after = time.monotonic() - since if not open_ids else None
    ctx.note(all_ended_after_close_s=rounded(ended_after, 2))
    _register_games(ctx, state)
    return {
        "games": len(state["games"]),
        "failure_rows": len(failed),
        "neither": len(open_ids),
        "ended_after_s": rounded(ended_after, 2),
        "bound_s": END_BOUND,
    }


async def all_games_failures_resolved(ctx: Context) -> dict[str, Any]:
    """Wait (bounded) until all 200 ids are games and every `bgg_import` failure row of the
    run is resolved (the automatic retry's work after the breaker closed)."""
    bgg_ids: set[int] = ctx.state.get("bgg_ids", set())
    deadline = time.monotonic() + RETRY_BOUND
    while True:
        state = await _read(ctx)
        unresolved = [f for f in state["failures"] if not f.get("resolved")]
        missing = bgg_ids - set(state["games"])
        if (not unresolved and not missing) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    _register_games(ctx, state)
    retries = [
        j
        for j in state["rows"].jobs
        if j.get("task_type") == "bgg_import" and j.get("trigger") == "auto_retry"
    ]
    return {
        "games": len(state["games"]),
        "missing": len(missing),
        "failure_rows": len(state["failures"]),
        "unresolved": len(unresolved),
        "auto_retry_jobs": len(retries),
        "all_resolved": len(state["games"]) == len(bgg_ids) and not missing and not unresolved,
    }


def _register_games(ctx: Context, state: dict[str, Any]) -> None:
    """Each game the bulk import created queued its thumbnail: the task check expects it."""
    ctx.expected_tasks.update(state["games"].values())


BREAKER_ROWS = "no bgg_import failure row says the breaker (BggUnavailable / CircuitBreakerOpen)"

SCENARIO = Scenario(
    name="bulk_import_outage",
    title="BGG goes down mid-way through a bulk import of 200: jobs wait, then all are imported",
    fault="the fake BGG answers 503 after the first 50 requests, then recovers",
    description=__doc__ or "",
    tags=("bgg", "breaker", "jobs", "bulk", "recovery"),
    hypothesis=Hypothesis(
        "The catalogue serves, both breakers are closed, and no job is in progress",
        # The backlog settles first: after the outage 200 thumbnail jobs wait for the one
        # worker slot, and the real game's thumbnail would queue behind them past its bound.
        (common.PUBLIC_API, common.BGG_CLOSED, common.CDN_CLOSED, jobs.SETTLED, common.REAL_IMPORT),
    ),
    method=(
        action("bgg-fails-after-50", bgg_fails_after_50),
        probe(
            "bulk-import-accepted",
            bulk_accepted,
            equals(True, "accepted"),
            promise=f"a bulk import of {IDS} ids answers 202 with {IDS} job ids",
        ),
        probe(
            "breaker-opens",
            breaker_opens,
            equals(True, "opened"),
            promise=f"the BGG breaker opens once BGG fails (after about {BEFORE_OUTAGE} games)",
        ),
        probe(
            "jobs-wait",
            jobs_wait,
            equals(True, "waiting"),
            promise=(
                f"for {HOLD:g} s of open breaker the jobs wait: queued with no attempt spent, "
                "each hand-back due later (run_after ahead), none failed"
            ),
        ),
        probe(
            "no-breaker-failure-rows",
            no_breaker_failures,
            equals(0, "breaker_failure_rows"),
            promise=BREAKER_ROWS,
        ),
        action("bgg-recovers", bgg_recovers),
        probe(
            "breaker-closes",
            breaker_closes,
            at_most(CLOSE_BOUND, "closed_after_s", "s"),
            promise=(
                "the breaker closes by itself (probe or a job's trial) within the reset "
                f"timeout + RECOVERY_CHECK_SECONDS (+{HARNESS.slack:g} s: {CLOSE_BOUND:g} s)"
            ),
        ),
        probe(
            "every-id-ended",
            every_id_ended,
            at_most(END_BOUND, "ended_after_s", "s"),
            promise=(
                f"within {END_BOUND:g} s of the breaker closing every id is a game or a "
                "bgg_import failure row"
            ),
        ),
        probe(
            "no-breaker-failure-rows-after",
            no_breaker_failures,
            equals(0, "breaker_failure_rows"),
            promise=BREAKER_ROWS + ", after recovery too",
        ),
        probe(
            "all-games-failures-resolved",
            all_games_failures_resolved,
            equals(True, "all_resolved"),
            promise=(
                f"all {IDS} ids end as games and every bgg_import failure row is resolved "
                "(the automatic retry after the breaker closes)"
            ),
        ),
    ),
    rollbacks=(common.RESTORE,),
    service_env=SERVICE_ENV,
    requires=frozenset({"own_service"}),
)
