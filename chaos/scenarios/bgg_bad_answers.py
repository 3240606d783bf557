"""bgg_bad_answers: BGG answers, but wrongly: unknown ids, HTML pages, broken or truncated
XML, an XML bomb, a body far over the size limit.

Promises: "not found" (an empty `<items>`) is a correct answer: 404 to the caller, never
retried, never counted by the breaker, and it resets the breaker's count; every bad answer
is a clear 502 after one request (asking again cannot help) and counts as a failure, so the
5th in a row opens the breaker; the parser never hangs or eats memory on a bomb or a huge
body (each bad import answers within 1 s; the service grows by less than 50 MB).
"""

from __future__ import annotations

from typing import Any

from chaos.context import Context, Skip
from chaos.core import Hypothesis, Scenario, equals, is_true, probe
from chaos.fakes import FaultRule
from chaos.promises import HARNESS, SPEC
from chaos.scenarios import common
from chaos.stats import rounded

NOT_FOUND = 10
OVERSIZE = 20 * 1024 * 1024
MAX_BAD_SECONDS = 1.0
MAX_RSS_GROWTH_MB = 50.0


def _bad(kind: str, index: int) -> FaultRule:
    if kind == "oversize":
        return FaultRule(name=f"bad-{index}-oversize", path="/thing", oversize=OVERSIZE,
                         content_type="application/xml", first_n=1)  # fmt: skip
    return FaultRule(name=f"bad-{index}-{kind}", path="/thing", body=kind, first_n=1)


async def _import_counted(ctx: Context, bgg_id: int | None = None) -> dict[str, Any]:
    since = ctx.bgg.log.last_seq
    call = await ctx.import_game(bgg_id, time_limit=HARNESS.deadline + 3)
    status = await ctx.breaker()
    return {
        "status": call.status,
        "code": call.error_code,
        "seconds": rounded(call.latency_ms / 1000, 3),
        "requests": ctx.bgg.log.count(since=since, path="/thing"),
        "failure_count": status.get("failure_count"),
        "state": status.get("state"),
    }


async def not_found_is_an_answer(ctx: Context) -> dict[str, Any]:
    """Unknown ids, one by one."""
    results = [await _import_counted(ctx, ctx.ids.unknown()) for _ in range(NOT_FOUND)]
    last = results[-1]
    return {
        "statuses": sorted({r["status"] for r in results}),
        "requests": sum(r["requests"] for r in results),
        "failure_count": last["failure_count"],
        "state": last["state"],
        "as_promised": all(r["status"] == 404 and r["requests"] == 1 for r in results)
        and last["failure_count"] == 0
        and last["state"] == "closed",
    }


async def bad_answers(ctx: Context) -> dict[str, Any]:
    """4 bad answers, a not-found, 4 more, then a 5th in a row."""
    rss_before = ctx.deployment.rss_bytes()
    first = ["html", "broken", "truncated", "bomb"]
    second = ["oversize", "html", "broken", "truncated"]
    runs: list[dict[str, Any]] = []
    for index, kind in enumerate(first):
        ctx.bgg_faults(_bad(kind, index))
        runs.append({"kind": kind, **await _import_counted(ctx)})
    ctx.bgg_faults()
    after_not_found = await _import_counted(ctx, ctx.ids.unknown())
    for index, kind in enumerate(second, start=len(first)):
        ctx.bgg_faults(_bad(kind, index))
        runs.append({"kind": kind, **await _import_counted(ctx)})
    ctx.bgg_faults(_bad("bomb", 99))
    fifth = {"kind": "bomb", **await _import_counted(ctx)}
    ctx.bgg_faults()
    opened_at = common.note_mttd(ctx, await ctx.breaker()) if fifth["state"] == "open" else None
    rss_after = ctx.deployment.rss_bytes()
    output = {
        "runs": runs,
        "all_502_one_request": all(r["status"] == 502 and r["requests"] == 1 for r in runs),
        "count_after_four": runs[3]["failure_count"],
        "not_found": {k: after_not_found[k] for k in ("status", "failure_count", "state")},
        "state_after_four_more": runs[-1]["state"],
        "state_after_fifth": fifth["state"],
        "opened_at": opened_at,
        "slowest_bad_s": max(r["seconds"] or 0 for r in [*runs, fifth]),
        "rss_growth_mb": None
        if rss_before is None or rss_after is None
        else rounded((rss_after - rss_before) / 2**20, 1),
    }
    ctx.state["bad"] = output
    return output


async def not_found_resets(ctx: Context) -> dict[str, Any]:
    """From `bad_answers`: the count before and after the not-found."""
    bad = ctx.state.get("bad", {})
    ok = (
        bad.get("count_after_four") == 4
        and bad.get("not_found", {}).get("failure_count") == 0
        and bad.get("state_after_four_more") == "closed"
    )
    return {"count_after_four": bad.get("count_after_four"), "not_found": bad.get("not_found"),
            "state_after_four_more": bad.get("state_after_four_more"), "resets": ok}  # fmt: skip


async def fifth_opens(ctx: Context) -> dict[str, Any]:
    """From `bad_answers`: the 5th bad answer in a row."""
    bad = ctx.state.get("bad", {})
    return {"state": bad.get("state_after_fifth"), "opened_at": bad.get("opened_at")}


async def parser_bounded(ctx: Context) -> dict[str, Any]:
    """From `bad_answers`: the slowest bad import and the memory the service grew by."""
    bad = ctx.state.get("bad", {})
    growth = bad.get("rss_growth_mb")
    if growth is None:
        raise Skip("the service's memory is not visible (--target)")
    return {
        "slowest_bad_s": bad.get("slowest_bad_s"),
        "rss_growth_mb": growth,
        "bounded": (bad.get("slowest_bad_s") or 99) <= MAX_BAD_SECONDS
        and growth <= MAX_RSS_GROWTH_MB,
    }


SCENARIO = Scenario(
    name="bgg_bad_answers",
    title="Unknown ids, HTML, broken XML, an XML bomb: clear errors, honest breaker",
    fault="the fake BGG answers empty <items>, HTML, broken/truncated XML, a bomb, 20 MB",
    description=__doc__ or "",
    tags=("bgg", "parser", "breaker"),
    hypothesis=Hypothesis("The catalogue serves and both breakers are closed", common.STEADY),
    method=(
        probe(
            "not-found-never-opens",
            not_found_is_an_answer,
            equals(True, "as_promised"),
            promise=f"{NOT_FOUND} unknown ids: 404 each, one request each, breaker count stays 0",
        ),
        probe(
            "bad-answers-are-502-not-retried",
            bad_answers,
            equals(True, "all_502_one_request"),
            promise="each bad answer is a 502 after exactly one request",
        ),
        probe(
            "not-found-resets-the-count",
            not_found_resets,
            equals(True, "resets"),
            promise="a not-found between failures is a success: the count restarts at 0",
        ),
        probe(
            "fifth-bad-answer-opens",
            fifth_opens,
            equals("open", "state"),
            promise=f"bad answers count: the {SPEC.breaker_fail_max}th in a row opens the breaker",
        ),
        probe(
            "parser-never-hangs-or-bloats",
            parser_bounded,
            is_true("bounded"),
            promise=(
                f"bomb and 20 MB body: answered within {MAX_BAD_SECONDS:g} s, service memory "
                f"grows < {MAX_RSS_GROWTH_MB:g} MB"
            ),
        ),
    ),
    rollbacks=(common.RESTORE,),
)
