"""Scenario probes whose judgement is subtle, against stand-in services (no process started):
when the alert checks are judged or skipped, the public API watched while rejections are
timed, the shared breaker's "BGG sees nothing", and the real BGG answers the steady state
imports."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaos.client import Call
from chaos.context import Ids, Skip
from chaos.core import Hypothesis, Scenario, SteadyProbe, action, equals, probe
from chaos.engine import run_scenario
from chaos.events import EventLog
from chaos.fakes import create_bgg_app
from chaos.fakes.bgg import SINGLE_FIXTURES
from chaos.promises import HARNESS
from chaos.scenarios import alerts, bgg_flaky, common, jobs, pair, service_restart
from chaos.stack import Options
from chaos.watch import BreakerWatcher, PublicSampler


def _call(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Call:
    return Call("GET", "/", status, 1.0, time.monotonic(), body, headers or {})


class _Webhook:
    url = "http://127.0.0.1:9/hooks/alerts"

    def alerts(self, since: float = 0.0) -> list[Any]:
        return []  # the service never got an alert through


class _Stack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.webhook = _Webhook()


class _Service:
    """A service whose alert rules say `breaker_open` is firing, and that rejects imports."""

    url = "http://service"

    def __init__(self, *, import_delay: float = 0.0) -> None:
        self.import_delay = import_delay
        self.public = 0

    async def alerts(self) -> Call:
        return _call(200, [{"rule": "breaker_open", "firing": True}])

    async def import_game(self, bgg_id: int, *, time_limit: float | None = None) -> Call:
        await asyncio.sleep(self.import_delay)
        return _call(503, {"error": {"code": "bgg_unavailable"}}, {"retry-after": "2"})

    async def public_games(self) -> Call:
        self.public += 1
        return _call(200)

    async def breakers(self, *, fresh: bool = False) -> dict[str, Any]:
        return {}


class _Deployment:
    backend = None
    spool_path = None

    def __init__(self, service: _Service) -> None:
        self.clients = [service]
        self.client = service


class _Ctx:
    """What the alert and rejection probes, and the engine, use of a `Context`."""

    def __init__(self, tmp_path: Path, options: Options, service: _Service | None = None) -> None:
        self.name = "probe"
        self.seed = 1
        self.run_seed = 1
        self.events = EventLog(None)
        self.stack = _Stack(options)
        self.service = service or _Service()
        self.clients = [self.service]
        self.deployment = _Deployment(self.service)
        self.sampler = PublicSampler(self.clients, self.events)  # type: ignore[arg-type]
        self.watcher = BreakerWatcher(self.clients, self.events)  # type: ignore[arg-type]
        self.ids = Ids(random.Random(1))
        self.state: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self.expected_tasks: set[int] = set()
        self.optional_tasks: set[int] = set()
        self.claimed: set[int] = set()
        self.started_at = datetime.now(UTC)
        self.upstream = 0

    @property
    def target_mode(self) -> bool:
        return self.options.target is not None

    @property
    def options(self) -> Options:
        return self.stack.options

    def note(self, **figures: Any) -> None:
        self.figures.update(figures)

    def thing_requests(self) -> int:
        return self.upstream


def _options(tmp_path: Path, **kwargs: Any) -> Options:
    return Options(seed=1, report_dir=tmp_path, **kwargs)


def _opened_long_ago(ctx: _Ctx) -> None:
    # The breaker opened long before: the wait for the alert is already over.
    ctx.state["opened_mono"] = ctx.state["fault_started"] = time.monotonic() - 100


# ---------------------------------------------------------------------- alerts


async def test_target_without_webhook_port_skips_the_alerts_with_a_reason(tmp_path: Path) -> None:
    ctx = _Ctx(tmp_path, _options(tmp_path, target="http://127.0.0.1:8000"))
    _opened_long_ago(ctx)
    for check in (alerts.alert_fires, alerts.alert_resolves_once):
        with pytest.raises(Skip, match="--webhook-port"):
            await check(ctx)  # type: ignore[arg-type]


async def test_target_with_webhook_port_judges_the_alerts(tmp_path: Path) -> None:
    options = _options(tmp_path, target="http://127.0.0.1:8000", webhook_port=18003)
    assert options.alerting_unchecked is None
    ctx = _Ctx(tmp_path, options)
    _opened_long_ago(ctx)
    output = await alerts.alert_fires(ctx)  # type: ignore[arg-type]
    assert output["fired"] is False and not alerts.ALERT_FIRES.tolerance.met(output)  # type: ignore[union-attr]
    assert "ALERT_WEBHOOK_URL" in output["hint"], "says why nothing came"


async def test_the_harness_own_service_is_always_judged(tmp_path: Path) -> None:
    ctx = _Ctx(tmp_path, _options(tmp_path))
    _opened_long_ago(ctx)
    output = await alerts.alert_fires(ctx)  # type: ignore[arg-type]
    assert output["fired"] is False and not alerts.ALERT_FIRES.tolerance.met(output)  # type: ignore[union-attr]


def _alert_scenario() -> Scenario:
    async def opened(ctx: Any) -> bool:
        _opened_long_ago(ctx)
        return True

    async def fine(ctx: Any) -> str:
        return "closed"

    return Scenario(
        name="alerts",
        title="alerts",
        fault="none",
        description="",
        hypothesis=Hypothesis("ok", (SteadyProbe(probe("ok", fine, equals("closed"))),)),
        method=(action("breaker-opened", opened), alerts.ALERT_FIRES),
        rollbacks=(action("undo", fine),),
    )


@pytest.mark.parametrize(
    ("options", "verdict"),
    [
        ({}, "deviated"),  # the harness's own service: no alert is a failure
        ({"target": "http://127.0.0.1:8000", "webhook_port": 18003}, "deviated"),
        ({"target": "http://127.0.0.1:8000"}, "passed"),  # not judged, and says so
    ],
)
async def test_alert_verdicts(tmp_path: Path, options: dict[str, Any], verdict: str) -> None:
    ctx = _Ctx(tmp_path, _options(tmp_path, **options))
    result = await run_scenario(_alert_scenario(), ctx, backend=None)  # type: ignore[arg-type]
    ctx.events.close()
    assert result.verdict == verdict, result.reason
    assert "alert-fires" in result.reason
    if verdict == "passed":
        assert [s["name"] for s in result.skipped] == ["alert-fires"]
        assert "--webhook-port" in result.skipped[0]["reason"]


# ---------------------------------------------------------------------- rejections


async def test_public_api_is_sampled_while_rejections_are_timed(tmp_path: Path) -> None:
    service = _Service(import_delay=0.005)
    ctx = _Ctx(tmp_path, _options(tmp_path), service)
    window = 0.35
    ctx.state["opened_at_wall"] = time.time() - HARNESS.breaker_reset_timeout + 0.25 + window
    started = time.monotonic()
    output = await common.measure_rejections(ctx)  # type: ignore[arg-type]
    assert output["all_rejected"] and output["count"] > 1
    # Sampled between rejections, at least every PUBLIC_EVERY seconds, though paused.
    assert output["public_samples"] >= 2 and service.public == output["public_samples"]
    assert output["public_errors"] == 0
    assert ctx.sampler.window(started, time.monotonic()).samples == output["public_samples"]
    assert ctx.sampler.running.is_set(), "the background sampler is resumed"


# ---------------------------------------------------------------------- shared breaker


def test_both_workers_reject_only_if_bgg_sees_nothing_more() -> None:
    assert pair.rejected_by_both([503] * 6, ["open", "open"], 0)
    assert not pair.rejected_by_both([503] * 6, ["open", "open"], 1), "a request got through"
    assert not pair.rejected_by_both([503, 201], ["open", "open"], 0)
    assert not pair.rejected_by_both([503] * 6, ["open", "closed"], 0)
    assert not pair.rejected_by_both([], ["open", "open"], 0)


# ---------------------------------------------------------------------- the one trial


class _Record:
    def __init__(self, query: str) -> None:
        self.query = query


class _Log:
    def __init__(self) -> None:
        self.queries: list[str] = []

    @property
    def last_seq(self) -> int:
        return len(self.queries)

    def records(self, *, since: int = 0, path: str | None = None) -> list[_Record]:
        return [_Record(q) for q in self.queries[since:]]


class _ProbeTakesTheTrial:
    """What `common.one_trial_closes` uses of a `Context`, for a service whose recovery probe
    takes the half-open trial while the harness waits for the reset timeout: the fake holds
    the probe's request, every import is rejected, and the breaker closes a little later."""

    def __init__(self) -> None:
        self.log = _Log()
        self.bgg = self
        self.clients = [object()]
        self.state: dict[str, Any] = {}
        self.reads = 0

    def bgg_faults(self, *rules: Any) -> None:
        pass

    def thing_requests(self) -> int:
        return len(self.log.queries)

    async def breaker(self, name: str = "BGG API", *, client: Any = None) -> dict[str, Any]:
        self.reads += 1
        if self.reads == 1:  # the wait for the reset timeout: the probe goes out meanwhile
            self.log.queries.append(f"id={common.PROBE_ID}&stats=1")
            return {"state": "half_open"}
        return {"state": "closed" if self.reads > 3 else "half_open"}

    async def import_game(self, *, client: Any = None, time_limit: float | None = None) -> Call:
        return _call(503, {"error": {"code": "bgg_unavailable"}}, {"retry-after": "1"})


async def test_the_service_probe_can_be_the_one_trial() -> None:
    ctx = _ProbeTakesTheTrial()
    output = await common.one_trial_closes(ctx)  # type: ignore[arg-type]
    assert output["upstream_requests"] == 1 and output["probe_requests"] == 1
    assert output["rejected"] == 10
    assert output["closed"], "the held trial is given its second to close the breaker"
    assert common.ONE_TRIAL.tolerance.met(output)  # type: ignore[union-attr]


# ---------------------------------------------------------------------- flaky imports


class _AlwaysOpen:
    """What `bgg_flaky.imports_succeed` uses of a `Context`, for a breaker that never closes
    (a reset timeout of an hour): every import is rejected at once."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"flaky_ids": list(range(1, bgg_flaky.PLANNED + 1))}
        self.figures: dict[str, Any] = {}
        self.imports = 0

    async def import_game(self, bgg_id: int, *, time_limit: float | None = None) -> Call:
        self.imports += 1
        return _call(503, {"error": {"code": "bgg_unavailable"}}, {"retry-after": "3600"})

    async def breaker(self, name: str = "BGG API", *, client: Any = None) -> dict[str, Any]:
        return {"state": "open"}

    def note(self, **figures: Any) -> None:
        self.figures.update(figures)


async def test_flaky_imports_stop_waiting_for_a_breaker_that_never_closes() -> None:
    ctx = _AlwaysOpen()
    output = await bgg_flaky.imports_succeed(ctx)  # type: ignore[arg-type]
    assert ctx.imports == bgg_flaky.MAX_EXCLUDED
    assert output["judged"] == output["failed"] == 0
    assert output["rejected_by_open_breaker"] == bgg_flaky.MAX_EXCLUDED


# ---------------------------------------------------------------------- real answers


@pytest.mark.parametrize(("bgg_id", "title"), common.REAL_GAMES)
def test_steady_state_imports_real_bgg_answers(bgg_id: int, title: str) -> None:
    app = create_bgg_app()
    body = app.catalogue.thing([bgg_id], stats=True, types=None)
    assert body == app.fixtures.read(SINGLE_FIXTURES[bgg_id]), "the file, byte for byte"
    assert f'<name type="primary" sortindex="1" value="{title}" />'.encode() in body
    assert bgg_id in Ids(random.Random(1)).used, "never handed out as a fresh id"


def _job(job_id: int, status: str, attempts: int = 0, owner: str | None = None) -> dict[str, Any]:
    return {"id": job_id, "status": status, "attempts": attempts, "lease_owner": owner}


def test_a_hand_back_counts_only_when_the_drain_cut_a_running_job_short() -> None:
    imports, judge_hand_back = service_restart.IMPORTS, service_restart.judge_hand_back
    done = [_job(i, "done", 1) for i in range(1, 5)]
    never_claimed = [_job(i, "queued") for i in range(5, imports + 1)]
    # Jobs 1-4 ran at the SIGTERM and all ended within the drain: nothing was handed back,
    # so nothing about handing back is proven (this passed a drain that drops running jobs).
    assert not judge_hand_back(done + never_claimed, [1, 2, 3, 4])["handed_back"]
    handed = [_job(1, "queued"), *done[1:]]
    judged = judge_hand_back(handed + never_claimed, [1, 2, 3, 4])
    assert judged["handed_back"] and judged["cut_short_by_the_drain"] == [1]
    # The drain that dropped them: still running, leased, the attempt spent.
    dropped = [_job(1, "running", 1, "worker-a"), *done[1:]]
    assert judge_hand_back(dropped + never_claimed, [1, 2, 3, 4])["not_handed_back"] == [1]


def test_service_restart_downloads_outlast_the_drain() -> None:
    assert service_restart.CDN_DELAY > jobs.DRAIN
