"""Probes and actions several scenarios share: steady-state checks, breaker measurements,
and the rollback that puts everything back.

Every number a tolerance uses comes from `chaos.promises` (the spec, or what the harness
configured), never from the service's answers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

from chaos.client import BGG_BREAKER, CDN_BREAKER, Call
from chaos.context import Context, parse_time
from chaos.core import SteadyProbe, action, at_most, equals, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS, SPEC
from chaos.stats import percentile, rounded
from chaos.watch import quiet

# ---------------------------------------------------------------------- steady state


async def public_api_answers(ctx: Context) -> dict[str, Any]:
    """One public read per service: the status codes."""
    calls = [await client.public_games() for client in ctx.clients]
    return {"statuses": [c.status for c in calls], "all_ok": all(c.status == 200 for c in calls)}


async def public_api_during(ctx: Context) -> dict[str, Any]:
    """What the public sampler saw while the method ran."""
    window = ctx.sampler.window(ctx.state.get("method_start", 0.0), ctx.state.get("method_end", 0))
    return window.to_json()


async def bgg_breaker_state(ctx: Context) -> str:
    """The BGG breaker's state on every service ("closed" only if closed everywhere)."""
    return await _state_everywhere(ctx, BGG_BREAKER)


async def cdn_breaker_state(ctx: Context) -> str:
    """The Image CDN breaker's state on every service."""
    return await _state_everywhere(ctx, CDN_BREAKER)


async def _state_everywhere(ctx: Context, name: str) -> str:
    states = {str((await ctx.breaker(name, client=c)).get("state")) for c in ctx.clients}
    return states.pop() if len(states) == 1 else "/".join(sorted(states))


async def service_ready(ctx: Context) -> int | None:
    """`/health/ready`'s status."""
    return (await ctx.service.ready()).status


READY = SteadyProbe(
    probe("service-ready", service_ready, equals(200), promise="readiness answers 200")
)


PUBLIC_API = SteadyProbe(
    probe(
        "public-api-answers",
        public_api_answers,
        equals(True, "all_ok"),
        promise="the public catalogue answers 200",
    ),
    during=public_api_during,
    during_tolerance=equals(SPEC.public_error_rate, "error_rate"),
    during_promise="public endpoints keep a 0 % error rate during the fault",
)

#: The same check before and after only (when the fault takes the catalogue down too).
PUBLIC_API_AROUND = SteadyProbe(PUBLIC_API.probe)

PUBLIC_API_FAST = SteadyProbe(
    probe(
        "public-api-fast",
        public_api_answers,
        equals(True, "all_ok"),
        promise="the public catalogue answers 200",
    ),
    during=public_api_during,
    during_tolerance=at_most(HARNESS.public_p99_ms, "p99_ms", "ms"),
    during_promise=f"public p99 stays under {HARNESS.public_p99_ms:g} ms (no worker starvation)",
)

BGG_CLOSED = SteadyProbe(
    probe(
        "bgg-breaker-closed",
        bgg_breaker_state,
        equals("closed"),
        promise="the BGG API breaker is closed",
    )
)

CDN_CLOSED = SteadyProbe(
    probe(
        "cdn-breaker-closed",
        cdn_breaker_state,
        equals("closed"),
        promise="the Image CDN breaker is closed",
    )
)

#: Real BGG answers from `fixtures/bgg/` that the fake serves byte for byte, and the title
#: each holds (a synthetic game would have another: the title proves the real file was read).
REAL_GAMES = ((28720, "Brass: Lancashire"), (1001, "Vendetta"), (223555, "Scythe: The Wind Gambit"))


async def real_game_imports(ctx: Context) -> dict[str, Any]:
    """Import a game from a real BGG answer, and wait (bounded) until its thumbnail is stored.

    Each check takes the next of `REAL_GAMES`, so the check after recovery imports a game
    the one before did not (a new game: 201 on a fresh service; 200 on a `--target` that has
    it already). Waiting for the thumbnail means no download of this check is still running
    when the fault starts, so it cannot count against the Image CDN breaker.
    """
    turn = int(ctx.state.get("real_games", 0))
    ctx.state["real_games"] = turn + 1
    bgg_id, title = REAL_GAMES[turn % len(REAL_GAMES)]
    call = await ctx.import_game(bgg_id, time_limit=HARNESS.deadline + 3)
    body = call.body if isinstance(call.body, dict) else {}
    game_id, stored = body.get("id"), body.get("has_thumbnail")
    bound = SPEC.thumbnail_attempts * (HARNESS.thumbnail_timeout + HARNESS.thumbnail_max_wait) + 2
    deadline = time.monotonic() + bound
    while call.ok and isinstance(game_id, int) and not stored and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        game = (await ctx.service.game(game_id)).body
        stored = game.get("has_thumbnail") if isinstance(game, dict) else None
    return {
        "bgg_id": bgg_id,
        "status": call.status,
        "title": body.get("title"),
        "thumbnail_stored": bool(stored),
        "imported": call.ok and body.get("title") == title and body.get("bgg_id") == bgg_id
        and bool(stored),
    }  # fmt: skip


REAL_IMPORT = SteadyProbe(
    probe(
        "real-game-imports",
        real_game_imports,
        equals(True, "imported"),
        promise=(
            "a game from a real BGG answer (fixtures/bgg) imports with its title, and its "
            "thumbnail is stored"
        ),
    )
)

STEADY = (PUBLIC_API, BGG_CLOSED, CDN_CLOSED, REAL_IMPORT)

# ---------------------------------------------------------------------- BGG breaker

#: From BGG healing to the status saying closed with no import, at most: the recovery probe
#: runs every recovery check once the (re-opened) breaker's reset timeout has passed; slack
#: for scheduling.
SELF_CLOSE_BOUND = HARNESS.breaker_reset_timeout + HARNESS.recovery_check + HARNESS.slack


async def closed_after_healing(ctx: Context, grace: float) -> tuple[str, float | None]:
    """Poll the BGG breaker's state on every service (and nothing else) until it says closed,
    for at most `SELF_CLOSE_BOUND` + `grace` s from BGG healing (`healed_mono`); the last state
    and the seconds from healing to closed (None: not closed)."""
    healed = float(ctx.state["healed_mono"])
    state = await bgg_breaker_state(ctx)
    while state != "closed" and time.monotonic() < healed + SELF_CLOSE_BOUND + grace:
        await asyncio.sleep(0.05)
        state = await bgg_breaker_state(ctx)
    return state, (time.monotonic() - healed if state == "closed" else None)


async def drive_until_open(ctx: Context, max_imports: int = 4) -> dict[str, Any]:
    """Import fresh ids one by one until the BGG breaker reports open (at most `max_imports`).

    Output: the import statuses, and how many `thing` requests the fake BGG had received
    when the breaker was first seen open (the spec: exactly `fail_max`).
    """
    statuses: list[int | None] = []
    at_open: int | None = None
    opened_at: str | None = None
    before = ctx.thing_requests()  # the steady-state check before the fault made some
    for _ in range(max_imports):
        call = await ctx.import_game(time_limit=HARNESS.deadline + 5)
        statuses.append(call.status)
        status = await ctx.breaker()
        if status.get("state") == "open":
            at_open = ctx.thing_requests() - before
            opened_at = note_mttd(ctx, status)
            break
    return {
        "statuses": statuses,
        "upstream_requests_at_open": at_open,
        "opened": at_open is not None,
        "opened_at": opened_at,
    }


def note_mttd(ctx: Context, status: dict[str, Any]) -> str | None:
    """Fault start -> breaker open, by the service's own `opened_at`, which is returned.

    Probes put it in their output too, so a Chaos Toolkit journal on its own gives the exact
    time to detection (the notebooks read `output.opened_at`).
    """
    opened = parse_time(status.get("opened_at"))
    started = ctx.state.get("fault_started_wall")
    ctx.state["opened_at_wall"] = opened
    ctx.state["opened_mono"] = time.monotonic()
    if opened is not None and started is not None:
        ctx.note(mttd_open_s=rounded(max(0.0, opened - started), 3))
    raw = status.get("opened_at")
    return raw if isinstance(raw, str) else None


#: How often the public API is sampled between rejections while the observers are paused.
PUBLIC_EVERY = 0.1


async def measure_rejections(ctx: Context) -> dict[str, Any]:
    """Imports while the breaker is open: status, `Retry-After`, latency, upstream traffic.

    Sequential, for as long as the breaker is sure to stay open: until 0.25 s before the
    harness's reset timeout runs out (by the service's `opened_at`), so every call is a
    rejection and none becomes the half-open trial; at most 200 calls.

    The background observers are paused (`quiet`) so their polling does not add its noise to
    the rejections' latency; the public API is still sampled every `PUBLIC_EVERY` seconds,
    between two rejections (never at the same time as one), so "public endpoints keep a 0 %
    error rate" is judged over the whole time the breaker is open too.
    """
    before = ctx.thing_requests()
    opened = ctx.state.get("opened_at_wall") or time.time()
    until = opened + HARNESS.breaker_reset_timeout - 0.25
    calls: list[Call] = []
    public_before = len(ctx.sampler.calls)
    async with quiet(ctx.sampler, ctx.watcher):
        sampled = 0.0
        while time.time() < until and len(calls) < 200:
            calls.append(await ctx.service.import_game(ctx.ids.fresh(), time_limit=1))
            if time.monotonic() - sampled >= PUBLIC_EVERY:
                await ctx.sampler.sample()
                sampled = time.monotonic()
    public = ctx.sampler.calls[public_before:]
    latencies = [c.latency_ms for c in calls if c.status is not None]
    rejected = [c for c in calls if c.status == 503 and "retry-after" in c.headers]
    output = {
        "count": len(calls),
        "all_rejected": bool(calls) and len(rejected) == len(calls),
        "codes": sorted({str(c.error_code) for c in calls}),
        "p50_ms": rounded(percentile(latencies, 50)),
        "p99_ms": rounded(percentile(latencies, 99)),
        "max_ms": rounded(max(latencies) if latencies else None),
        "upstream_requests": ctx.thing_requests() - before,
        "public_samples": len(public),
        "public_errors": sum(1 for c in public if c.status != 200),
    }
    ctx.state["rejections"] = output
    ctx.note(rejection_p50_ms=output["p50_ms"], rejection_p99_ms=output["p99_ms"])
    ctx.events.emit("rejections", **output)
    return output


async def rejections_were_fast(ctx: Context) -> dict[str, Any]:
    """The figures `measure_rejections` took (judged on p99)."""
    return dict(ctx.state.get("rejections", {}))


REJECTIONS_503 = probe(
    "rejected-with-503-and-retry-after",
    measure_rejections,
    equals(True, "all_rejected"),
    promise="while open every import is rejected with 503 + Retry-After",
)
REJECTIONS_FAST = probe(
    "rejections-fast",
    rejections_were_fast,
    at_most(SPEC.rejection_p99_ms, "p99_ms", "ms"),
    promise=f"rejections while open: p99 < {SPEC.rejection_p99_ms:g} ms",
)
REJECTIONS_NO_UPSTREAM = probe(
    "no-upstream-request-while-open",
    rejections_were_fast,
    equals(0, "upstream_requests"),
    promise="the fake BGG sees no request while the breaker is open",
)


async def wait_for_half_open(ctx: Context) -> float:
    """Sleep until the harness's reset timeout has passed since the breaker opened."""
    status = await ctx.breaker()
    opened = parse_time(status.get("opened_at"))
    if opened is None:
        return 0.0
    wait = opened + HARNESS.breaker_reset_timeout - time.time() + 0.1
    if wait > 0:
        await asyncio.sleep(wait)
    return max(0.0, wait)


async def one_trial_closes(ctx: Context) -> dict[str, Any]:
    """After the reset timeout, many concurrent imports: exactly one request may reach BGG.

    The fake holds the first request for 1 s (a slow trial, well inside the harness's 2 s
    deadline), so the other callers all arrive while the breaker is half-open even on a busy
    machine; they must be rejected, and the trial's success must close the breaker.

    The trial may be the service's own recovery probe (`BGG_RECOVERY_PROBE_ID`), which
    takes it as soon as the reset timeout has passed, possibly before the imports arrive:
    then the probe is the one request (held by the fake like any first one) and every import
    is rejected. So requests are counted from before the wait, and the breaker is given the
    held trial's second (and the slack) to close.
    """
    ctx.bgg_faults(FaultRule(name="slow-trial", path="/thing", delay=1.0, first_n=1))
    before, seq = ctx.thing_requests(), ctx.bgg.log.last_seq
    waited = await wait_for_half_open(ctx)
    clients = ctx.clients
    calls = await asyncio.gather(
        *(ctx.import_game(client=clients[i % len(clients)], time_limit=5) for i in range(10))
    )
    deadline = time.monotonic() + 1.0 + HARNESS.slack
    while True:
        states = [str((await ctx.breaker(client=c)).get("state")) for c in clients]
        if set(states) == {"closed"} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    output = {
        "waited_s": round(waited, 3),
        "upstream_requests": ctx.thing_requests() - before,
        "probe_requests": probe_requests(ctx, since=seq),
        "succeeded": sum(1 for c in calls if c.ok),
        "rejected": sum(1 for c in calls if c.status == 503),
        "states": states,
        "closed": set(states) == {"closed"},
    }
    ctx.state["trial"] = output
    return output


#: The BGG thing the service's recovery probe fetches (its default `BGG_RECOVERY_PROBE_ID`;
#: the harness hands out ids from 100,000 up, so no import asks for it).
PROBE_ID = 13


def probe_requests(ctx: Context, *, since: int = 0) -> int:
    """`thing` requests for `PROBE_ID` the fake BGG received after request number `since`."""
    records = ctx.bgg.log.records(since=since, path="/thing")
    return sum(1 for r in records if parse_qs(r.query).get("id") == [str(PROBE_ID)])


async def trial_result(ctx: Context) -> dict[str, Any]:
    """What `one_trial_closes` saw."""
    return dict(ctx.state.get("trial", {}))


ONE_TRIAL = probe(
    "one-half-open-trial",
    one_trial_closes,
    equals(1, "upstream_requests"),
    promise=(
        f"after the reset timeout ({HARNESS.breaker_reset_timeout:g} s, set by the harness) "
        "exactly one trial request reaches BGG"
    ),
)
TRIAL_CLOSES = probe(
    "trial-closes-breaker",
    trial_result,
    equals(True, "closed"),
    promise="the successful trial closes the breaker",
)

# ---------------------------------------------------------------------- rollback


async def restore(ctx: Context) -> dict[str, Any]:
    """Remove every fault, then bring both breakers back to closed (bounded).

    An open breaker only half-opens when called, so once the harness's reset timeout has
    passed a fresh import is sent as the trial (for the Image CDN breaker its thumbnail
    download is). Gives up after a few reset timeouts: a service that never recovers is a
    finding for the next scenario's steady state, not a harness error.
    """
    ctx.bgg_faults()
    ctx.cdn_faults()
    ctx.proxies.reset()
    backend = ctx.deployment.backend
    if backend is not None and not ctx.target_mode:
        await backend.outage_end()
    ctx.fault("all", False)
    deadline = time.monotonic() + 3 * HARNESS.breaker_reset_timeout + 4
    trials = 0
    while True:
        states = {name: await _state_everywhere(ctx, name) for name in (BGG_BREAKER, CDN_BREAKER)}
        if all(s == "closed" for s in states.values()) or time.monotonic() > deadline:
            return {
                "states": states,
                "trials": trials,
                "recovered": set(states.values()) == {"closed"},
            }
        for client in ctx.clients:
            await ctx.import_game(client=client, time_limit=HARNESS.deadline + 2)
        trials += 1
        await asyncio.sleep(0.3)


RESTORE = action("restore-upstreams", restore)
