"""database_outage: the database goes away while thumbnail tasks are finishing.

SQLite: the harness's own connection holds the write lock (`BEGIN IMMEDIATE`) for longer
than the service's busy timeout, what a long batch job, backup or migration does to a real
SQLite deployment: every write fails with "database is locked", reads go on (WAL).
PostgreSQL: the TCP proxy in front of the server goes down (connections closed, new ones
refused). See `chaos.database` for why these are the real outages of each backend.

Promises: readiness reports the outage (503); a write during it answers 503
`database_unavailable` (never a 500); every task record that falls in the outage is
spooled; readiness recovers; after the next write every spooled record is in the table
exactly once (and the set checker finds nothing lost or doubled). Last, a 2xx means
committed: a delete is sent while the harness holds, for well under the service's lock
wait, a lock its commit must wait for (SQLite: the write lock; PostgreSQL: the row), and
the database, read directly the moment the 204 arrives, no longer has the game. A commit
after the response (a session dependency closed after the answer is sent) answers while
the lock is held, and the game is still there.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chaos.checker import TASK_TYPE, read_spool
from chaos.context import Context, Skip
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS
from chaos.scenarios import common
from chaos.stats import rounded

TASKS = 6
CDN_DELAY = 1.0
#: How long the harness lets a write wait for the database before failing, as a bound for
#: its own waits only. The service's real wait is `DATABASE_CONNECT_TIMEOUT` (SQLite's busy
#: timeout, PostgreSQL's connect and pool timeouts: system/db/engine.py), which the harness
#: sets to `HARNESS.database_connect_timeout` = 1 s; 5 s is the spec's default for it, so the
#: bound also covers a candidate configuration that puts it back.
WRITE_WAIT_BOUND = 5.0
#: How long the harness holds the lock on the game it deletes: well under the service's
#: wait for a lock (`HARNESS.database_connect_timeout`), so a correct delete waits and commits.
LOCK_HOLD = HARNESS.database_connect_timeout * 0.3


def _backend(ctx: Context) -> Any:
    backend = ctx.deployment.backend
    if backend is None or ctx.target_mode:
        raise Skip("needs a database the harness controls")
    return backend


async def tasks_in_flight(ctx: Context) -> dict[str, Any]:
    """Thumbnails that fail (404) after 1 s, so their records land during the outage."""
    ctx.cdn_faults(FaultRule(name="slow-404", path="/images/*", status=404, delay=CDN_DELAY))
    calls = await ctx.imports(TASKS, time_limit=HARNESS.deadline + 3)
    games = {c.body["id"] for c in calls if c.status == 201 and isinstance(c.body, dict)}
    ctx.state["games"] = games
    # Downloads are jobs: one still queued when the database goes cannot be claimed (the
    # claim is a write) and so has no record to spool. Wait (bounded, well under the 1 s the
    # CDN holds each answer) until every job is running.
    running: set[Any] = set()
    backend = ctx.deployment.backend
    deadline = time.monotonic() + CDN_DELAY / 2
    while backend is not None and running != games and time.monotonic() < deadline:
        rows = await backend.read()
        running = {
            job["payload"].get("game_id")
            for job in rows.jobs
            if job.get("status") == "running" and isinstance(job.get("payload"), dict)
        }
        await asyncio.sleep(0.02)
    return {"statuses": [c.status for c in calls], "jobs_running": len(running & games)}


async def database_down(ctx: Context) -> dict[str, Any]:
    """Take the database away."""
    backend = _backend(ctx)
    await backend.outage_start()
    ctx.fault("database-down", True, backend=backend.kind)
    return {"backend": backend.kind}


async def readiness_goes_503(ctx: Context) -> dict[str, Any]:
    """Poll readiness until it reports the outage (bounded by the connect timeout)."""
    bound = HARNESS.database_connect_timeout + HARNESS.slack + 1
    started = time.monotonic()
    call = await ctx.service.ready()
    while call.status != 503 and time.monotonic() - started < bound:
        await asyncio.sleep(0.1)
        call = await ctx.service.ready()
    return {"status": call.status, "seconds": rounded(time.monotonic() - started, 3),
            "body": call.body}  # fmt: skip


async def write_answers_503(ctx: Context) -> dict[str, Any]:
    """One import during the outage (BGG is fine; storing the game is not)."""
    call = await ctx.import_game(time_limit=WRITE_WAIT_BOUND + HARNESS.deadline + 3)
    return {"status": call.status, "code": call.error_code,
            "seconds": rounded(call.latency_ms / 1000, 3)}  # fmt: skip


def _our_records(ctx: Context) -> list[dict[str, Any]]:
    games = ctx.state.get("games", set())
    return [
        r
        for r in read_spool(ctx.deployment.spool_path)
        if r.get("task_type") == TASK_TYPE and r.get("game_id") in games
    ]


async def records_spooled(ctx: Context) -> dict[str, Any]:
    """Wait until every task's record is in the spool (the database cannot take them)."""
    games = ctx.state.get("games", set())
    deadline = time.monotonic() + CDN_DELAY * 2 + WRITE_WAIT_BOUND + 6
    records = _our_records(ctx)
    while len({r.get("game_id") for r in records}) < len(games) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        records = _our_records(ctx)
    ctx.state["spooled"] = {str(r.get("record_id")) for r in records}
    return {
        "tasks": len(games),
        "spooled": len(records),
        "all_spooled": bool(games) and {r.get("game_id") for r in records} == games,
    }


async def database_up(ctx: Context) -> dict[str, Any]:
    """Give the database back."""
    backend = _backend(ctx)
    await backend.outage_end()
    ctx.fault("database-down", False, backend=backend.kind)
    return {"backend": backend.kind}


async def readiness_recovers(ctx: Context) -> dict[str, Any]:
    """Poll readiness until 200 (bounded)."""
    started = time.monotonic()
    call = await ctx.service.ready()
    while call.status != 200 and time.monotonic() - started < HARNESS.database_connect_timeout + 5:
        await asyncio.sleep(0.1)
        call = await ctx.service.ready()
    return {"status": call.status, "seconds": rounded(time.monotonic() - started, 3)}


async def next_write(ctx: Context) -> dict[str, Any]:
    """A healthy import: its task's record is the next write, which replays the spool."""
    ctx.cdn_faults()
    call = await ctx.import_game(time_limit=HARNESS.deadline + 3)
    return {"status": call.status}


async def replayed_exactly_once(ctx: Context) -> dict[str, Any]:
    """Wait until the spool holds none of our records; each must be in the table once."""
    spooled: set[str] = ctx.state.get("spooled", set())
    deadline = time.monotonic() + 10
    # Polling: the spool is a file another process rewrites; there is nothing to await.
    while _our_records(ctx) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    backend = _backend(ctx)
    runs = (await backend.read()).runs
    stored: dict[str, int] = {}
    for run in runs:
        key = str(run.get("record_id"))
        if key in spooled:
            stored[key] = stored.get(key, 0) + 1
    missing = sorted(spooled - set(stored))
    doubled = sorted(k for k, n in stored.items() if n > 1)
    left = len(_our_records(ctx))
    return {
        "spooled": len(spooled),
        "replayed": len(stored),
        "spool_left": left,
        "missing": missing[:10],
        "duplicated": doubled[:10],
        "exactly_once": bool(spooled) and not missing and not doubled and left == 0,
    }


def committed_at_answer(status: int | None, gone: bool | None) -> bool:
    """The delete's verdict: it answered 204 and the game was gone from the database when
    the answer arrived (`gone` None: not read, as for any other answer)."""
    return status == 204 and gone is True


async def delete_committed_before_2xx(ctx: Context) -> dict[str, Any]:
    """Import a game, then delete it while holding a lock its commit must wait for
    (`LOCK_HOLD`); the database is read directly the moment the answer arrives."""
    backend = _backend(ctx)
    imported = await ctx.import_game(time_limit=HARNESS.deadline + 3)
    game_id = imported.body.get("id") if isinstance(imported.body, dict) else None
    if imported.status != 201 or not isinstance(game_id, int):
        return {"imported": imported.status, "committed_at_answer": False}
    # Its thumbnail download may now end `superseded`: allowed, not required, of this game.
    ctx.expected_tasks.discard(game_id)
    ctx.optional_tasks.add(game_id)
    gone: bool | None = None
    started = time.monotonic()
    async with backend.game_locked(game_id):
        request = asyncio.ensure_future(
            ctx.service.delete_game(game_id, time_limit=WRITE_WAIT_BOUND + 5)
        )
        done, _ = await asyncio.wait({request}, timeout=LOCK_HOLD)
        answered_while_locked = request in done
        if answered_while_locked and request.result().ok:
            gone = not await backend.game_exists(game_id)
    deleted = await request
    if not answered_while_locked and deleted.ok:
        gone = not await backend.game_exists(game_id)
    return {
        "game_id": game_id,
        "status": deleted.status,
        "lock_held_s": rounded(LOCK_HOLD, 3),
        "answered_while_locked": answered_while_locked,
        "answer_s": rounded(deleted.started - started + deleted.latency_ms / 1000, 3),
        "gone_at_answer": gone,
        "committed_at_answer": committed_at_answer(deleted.status, gone),
    }


SCENARIO = Scenario(
    name="database_outage",
    title="The database goes away: readiness 503, records spooled, replayed exactly once",
    fault="SQLite: a foreign write lock; PostgreSQL: the proxy in front of it goes down",
    description=__doc__ or "",
    tags=("database", "spool", "readiness"),
    hypothesis=Hypothesis(
        "The service is ready, the catalogue serves and both breakers are closed",
        (common.READY, common.PUBLIC_API_AROUND, common.BGG_CLOSED, common.CDN_CLOSED),
    ),
    method=(
        action("tasks-in-flight", tasks_in_flight),
        action("database-down", database_down),
        probe(
            "readiness-goes-503",
            readiness_goes_503,
            equals(503, "status"),
            promise="readiness answers 503 while the database is unavailable",
        ),
        probe(
            "write-answers-503",
            write_answers_503,
            equals(503, "status"),
            promise="a write during the outage answers 503 database_unavailable, never 500",
        ),
        probe(
            "records-spooled",
            records_spooled,
            equals(True, "all_spooled"),
            promise="every task record that cannot be stored is spooled",
        ),
        action("database-up", database_up),
        probe(
            "readiness-recovers",
            readiness_recovers,
            equals(200, "status"),
            promise="readiness answers 200 again once the database is back",
        ),
        action("next-write", next_write),
        probe(
            "spool-replayed-exactly-once",
            replayed_exactly_once,
            equals(True, "exactly_once"),
            promise="after recovery every spooled record is in the table exactly once",
        ),
        probe(
            "delete-committed-before-2xx",
            delete_committed_before_2xx,
            equals(True, "committed_at_answer"),
            promise="a delete answers 204 only once committed: held up by a lock its commit "
            "waits for, it answers after the lock goes, and the game is gone at that moment",
        ),
    ),
    rollbacks=(common.RESTORE,),
    per_backend=True,
    requires=frozenset({"database"}),
    # Every download in flight when the database goes: a job not yet claimed then waits in
    # the queue (the claim needs the database) instead of having a record to spool.
    service_env=(("BACKGROUND_CONCURRENCY", str(TASKS + 2)),),
)
