"""The harness's declarative core, engine, set checker and reports, without a service.

The engine runs small scenarios whose activities are plain coroutines, against a stand-in
context with a real sampler and event log, so verdicts, rollbacks and the journal layout are
tested in milliseconds. The end-to-end runs against the real service are in
`test_broken_service.py`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chaoslib.activity import ensure_activity_is_valid
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.hypothesis import ensure_hypothesis_tolerance_is_valid, within_tolerance

from chaos.checker import check_tasks, read_spool
from chaos.context import Skip
from chaos.core import (
    Hypothesis,
    Scenario,
    SteadyProbe,
    Tolerance,
    action,
    at_least,
    at_most,
    equals,
    is_true,
    probe,
)
from chaos.database import TaskRows
from chaos.engine import run_scenario, skipped
from chaos.events import EventLog
from chaos.report import exit_code, journal, summary
from chaos.runner import _skip_reason, derive_seed, plan
from chaos.scenarios import NAMES, load, load_all
from chaos.stack import Options, Stack
from chaos.stats import percentile
from chaos.watch import PublicSampler
from tests.conftest import FIXTURES

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------------- tolerances


def test_tolerances_judge_values_and_paths() -> None:
    assert equals(5).met(5) and not equals(5).met(4)
    assert at_most(50, "p99_ms").met({"p99_ms": 12.5})
    assert not at_most(50, "p99_ms").met({"p99_ms": 50.1})
    assert not at_most(50, "p99_ms").met({"p99_ms": None}), "a missing figure never passes"
    assert not at_most(50, "p99_ms").met({}), "a missing key never passes"
    assert at_least(0.95, "rate").met({"rate": 0.95})
    assert not at_least(0.95, "rate").met({"rate": True}), "a bool is not a number"
    assert is_true("a.b").met({"a": {"b": True}}) and not is_true("a.b").met({"a": {"b": 1}})


def test_tolerances_describe_themselves_in_ctk_terms() -> None:
    assert at_most(50, "p99_ms", "ms").describe() == "p99_ms <= 50 ms"
    assert equals("closed").to_json() == "closed"  # CTK's scalar tolerance
    assert is_true().to_json() is True
    assert at_most(50, "p99_ms").to_json()["type"] == "range"
    assert at_most(50, "p99_ms").to_json()["target"] == "p99_ms"
    # A bool on a key: CTK's `jsonpath` needs the optional jsonpath2 and takes 1 for true,
    # so it is a `probe` tolerance that judges with the harness's own Tolerance.
    assert equals(True, "fired").to_json()["type"] == "probe"
    assert equals(True, "fired").to_json()["provider"]["func"] == "tolerance_met"
    with pytest.raises(ValueError, match="one key"):
        at_most(50, "a.b")  # CTK's range reads one key: a nested bound has no CTK form


CASES = [
    (equals("closed"), ["closed", "open", None]),
    (equals(200), [200, 503, None]),
    (equals(0.5), [0.5, 0.4, None]),
    (equals(5, "n"), [{"n": 5}, {"n": 6}, {"n": None}]),
    (equals(0.0, "rate"), [{"rate": 0.0}, {"rate": 0.01}, {"rate": None}]),
    (equals("open", "state"), [{"state": "open"}, {"state": "closed"}, {}]),
    (equals(True, "ok"), [{"ok": True}, {"ok": False}, {}]),
    (is_true("a.b"), [{"a": {"b": True}}, {"a": {"b": False}}, {"a": {}}]),
    (is_true(), [True, False, None]),
    (at_most(50, "p99_ms"), [{"p99_ms": 12.5}, {"p99_ms": 50}, {"p99_ms": 50.1}, {"p99_ms": None}]),
    (at_least(0.95, "rate"), [{"rate": 0.95}, {"rate": 1.0}, {"rate": 0.9}, {"rate": None}]),
]


@pytest.mark.parametrize(("tolerance", "outputs"), CASES)
def test_tolerances_are_ctk_tolerances_that_ctk_judges_alike(
    tolerance: Tolerance, outputs: list[Any]
) -> None:
    written = json.dumps(tolerance.to_json())  # as it is in the journal
    ensure_hypothesis_tolerance_is_valid(json.loads(written))  # chaoslib's own check
    for output in outputs:
        # chaoslib's verdict (a probe tolerance gets the output written into its arguments:
        # a fresh copy each time).
        try:
            theirs = within_tolerance(json.loads(written), output)
        except TypeError:
            # chaoslib's `range` cannot convert a missing number (null): it raises where the
            # harness says "not met"; neither passes it.
            assert not tolerance.met(output) and written.startswith('{"type": "range"')
            continue
        assert theirs == tolerance.met(output), (written, output)


def check_with_chaoslib(journal: dict[str, Any]) -> None:
    """chaoslib accepts the journal's experiment and every activity its results declare."""
    ensure_experiment_is_valid(journal["experiment"])
    steady = journal["steady_states"]
    checks = [steady["before"], steady["after"], *steady["during"]]
    entries = [p for check in checks if check is not None for p in check["probes"]]
    for entry in [*entries, *journal["run"], *journal["rollbacks"]]:
        ensure_activity_is_valid(entry["activity"])
        assert entry["status"] in ("succeeded", "failed"), entry
    assert journal["status"] in ("completed", "failed", "aborted", "interrupted")
    # chaoslib did not write it; and chaostoolkit-reporting parses a version there as semver
    # to pick its template (`chaos report` crashed on the harness's name).
    assert journal["chaoslib-version"] is None


def test_every_scenario_journal_experiment_passes_chaoslib_validation() -> None:
    """The experiment each scenario's journal carries (built as the engine builds it, for a
    scenario that did not run) is one chaoslib's own validation accepts."""
    for scenario in load_all():
        journal_ = skipped(scenario, scenario.name, "not run", "sqlite").journal
        try:
            check_with_chaoslib(json.loads(json.dumps(journal_)))
        except Exception as exc:  # name the scenario
            raise AssertionError(f"{scenario.name}: {exc}") from exc


def test_ctk_cannot_run_a_harness_activity_and_says_where_it_runs() -> None:
    from chaos.ctk import HarnessOnly, harness_activity

    declared = load("bgg_outage").to_json()["method"][0]
    assert declared["provider"]["arguments"] == {
        "scenario": "bgg_outage",
        "activity": "bgg-answers-503",
        "coroutine": "chaos.scenarios.bgg_outage.bgg_answers_503",
    }
    with pytest.raises(HarnessOnly, match=r"python -m chaos run bgg_outage"):
        harness_activity(**declared["provider"]["arguments"])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) is None


def test_scenario_seeds_are_stable_and_independent() -> None:
    assert derive_seed(1, "bgg_flaky") == derive_seed(1, "bgg_flaky")
    assert derive_seed(1, "bgg_flaky") != derive_seed(2, "bgg_flaky")
    assert derive_seed(1, "bgg_flaky") != derive_seed(1, "bgg_outage")


async def test_the_scenario_start_names_both_seeds(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    ctx = _Ctx(events)
    ctx.seed, ctx.run_seed = derive_seed(3, "toy"), 3
    await run_scenario(_scenario(), ctx, backend="sqlite")  # type: ignore[arg-type]
    events.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    (start,) = [e for e in map(json.loads, lines) if e["kind"] == "scenario_start"]
    assert (start["seed"], start["run_seed"]) == (derive_seed(3, "toy"), 3)


def test_every_scenario_is_declared_with_promises() -> None:
    scenarios = load_all()
    assert [s.name for s in scenarios] == list(NAMES)
    for scenario in scenarios:
        judged = [a for a in scenario.method if a.tolerance is not None]
        assert judged, f"{scenario.name} judges nothing"
        assert all(a.promise for a in judged), f"{scenario.name}: a hypothesis without a promise"
        assert scenario.rollbacks, f"{scenario.name} has no rollback"
        assert json.dumps(scenario.to_json())  # the experiment is plain JSON


# ---------------------------------------------------------------------- set checker


def _run(
    game: int,
    outcome: str,
    record: str,
    *,
    failure: int | None = None,
    trigger: str = "initial",
    at: datetime = T0,
) -> dict[str, Any]:
    return {
        "record_id": record,
        "task_type": "thumbnail_download",
        "game_id": game,
        "failure_id": failure,
        "outcome": outcome,
        "trigger": trigger,
        "started_at": at,
    }


def _failure(ident: int, game: int, at: datetime = T0) -> dict[str, Any]:
    return {"id": ident, "task_type": "thumbnail_download", "game_id": game, "created_at": at}


def test_set_checker_classifies_every_task() -> None:
    rows = TaskRows(
        runs=[
            _run(1, "success", "r1"),
            _run(2, "failure", "r2", failure=10),
            _run(3, "failure", "r3", failure=None),  # its failure row is missing: lost
            _run(4, "success", "r4a"),
            _run(4, "success", "r4b"),  # two initial runs: duplicated
            _run(9, "success", "r9"),  # never started by the harness: unexpected
            _run(2, "success", "r2-retry", failure=10, trigger="auto_retry"),  # not a new task
            _run(8, "success", "old", at=T0 - timedelta(hours=1)),  # before the window
        ],
        failures=[_failure(10, 2)],
    )
    spool = [{"record_id": "r6", "task_type": "thumbnail_download", "game_id": 6,
              "outcome": "failure", "trigger": "initial"}]  # fmt: skip
    check = check_tasks(rows, spool, expected={1, 2, 3, 4, 5, 6}, optional=set(), since=T0)
    assert (check.succeeded, check.recorded_failure, check.in_spool) == (1, 2, 1)
    assert sorted(check.lost) == [3, 5]
    assert check.duplicated == [4]
    assert check.unexpected == [9]
    assert check.data_lost


def test_set_checker_counts_a_record_in_table_and_spool_once() -> None:
    rows = TaskRows(runs=[_run(1, "success", "r1")], failures=[])
    spool = [{"record_id": "r1", "task_type": "thumbnail_download", "game_id": 1,
              "outcome": "success", "trigger": "initial"}]  # fmt: skip
    check = check_tasks(rows, spool, expected={1}, optional=set(), since=T0)
    assert (check.succeeded, check.duplicated, check.data_lost) == (1, [], False)


def test_set_checker_allows_a_task_for_an_updated_game() -> None:
    rows = TaskRows(runs=[_run(7, "success", "r7")], failures=[])
    check = check_tasks(rows, [], expected=set(), optional={7}, since=T0)
    assert not check.data_lost


def test_spool_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    spool.write_text('{"record_id": "a"}\n{"record_id": "b", "tru')
    assert read_spool(spool) == [{"record_id": "a"}]
    assert read_spool(tmp_path / "missing.jsonl") == []


# ---------------------------------------------------------------------- engine


class _Deployment:
    def __init__(self) -> None:
        self.backend = None
        self.spool_path = None
        self.clients: list[Any] = []


class _Ctx:
    """What the engine needs of a `Context`."""

    def __init__(self, events: EventLog) -> None:
        self.name = "toy"
        self.seed = 7
        self.run_seed = 7
        self.events = events
        self.sampler = PublicSampler([], events)
        self.deployment = _Deployment()
        self.state: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self.expected_tasks: set[int] = set()
        self.optional_tasks: set[int] = set()
        self.expected_jobs: set[int] = set()
        self.claimed: set[int] = set()
        self.started_at = T0
        self.log: list[str] = []


def _scenario(*method: Any, rollbacks: tuple[Any, ...] = ()) -> Scenario:
    async def steady(ctx: Any) -> str:
        ctx.log.append("steady")
        return "closed"

    async def undo(ctx: Any) -> bool:
        ctx.log.append("rollback")
        return True

    return Scenario(
        name="toy",
        title="a toy",
        fault="none",
        description="",
        hypothesis=Hypothesis("closed", (SteadyProbe(probe("closed", steady, equals("closed"))),)),
        method=tuple(method),
        rollbacks=rollbacks or (action("undo", undo),),
    )


def _ok(value: Any) -> Any:
    async def activity(ctx: Any) -> Any:
        ctx.log.append(f"ok:{value}")
        return value

    return activity


async def _crash(ctx: Any) -> None:
    raise RuntimeError("boom")


async def _skip(ctx: Any) -> None:
    raise Skip("not here")


async def _run_toy(tmp_path: Path, scenario: Scenario) -> tuple[Any, _Ctx]:
    events = EventLog(tmp_path / "events.jsonl")
    ctx = _Ctx(events)
    result = await run_scenario(scenario, ctx, backend="sqlite")  # type: ignore[arg-type]
    events.close()
    return result, ctx


class _Rows:
    """A database that holds one finished run of game 1, and a job for game 2 still queued."""

    kind = "sqlite"

    async def read(self) -> TaskRows:
        run = {"record_id": "r1", "task_type": "thumbnail_download", "game_id": 1,
               "failure_id": None, "outcome": "success", "trigger": "initial",
               "started_at": T0, "job_id": None}  # fmt: skip
        job = {"id": 5, "task_type": "thumbnail_download", "payload": {"game_id": 1},
               "trigger": "initial", "status": "queued", "attempts": 0,
               "run_after": T0, "failure_id": None, "created_at": T0}  # fmt: skip
        return TaskRows(runs=[run], failures=[], jobs=[job], has_jobs=True, now=T0)


async def test_a_job_that_never_ended_is_data_lost_even_when_its_task_has_a_run(
    tmp_path: Path,
) -> None:
    """The engine runs the job check after the set checker: before it, a job still queued
    after the settle wait passed unseen."""
    events = EventLog(tmp_path / "events.jsonl")
    ctx = _Ctx(events)
    ctx.deployment.backend = _Rows()  # type: ignore[assignment]
    ctx.expected_tasks = {1}
    result = await run_scenario(
        _scenario(probe("count", _ok(5), equals(5))),
        ctx,  # type: ignore[arg-type]
        backend="sqlite",
        settle_timeout=0.3,
    )
    events.close()
    assert result.tasks is not None and result.tasks.succeeded == 1
    assert result.verdict == "data_lost"
    assert "jobs lost 1" in result.reason
    assert result.journal["tasks"]["jobs"]["lost_job_ids"] == [5]


async def test_held_hypotheses_pass_and_the_journal_has_ctk_layout(tmp_path: Path) -> None:
    result, ctx = await _run_toy(
        tmp_path, _scenario(action("fault", _ok("on")), probe("count", _ok(5), equals(5)))
    )
    assert result.verdict == "passed", result.reason
    assert ctx.log == ["steady", "ok:on", "ok:5", "rollback", "steady"]
    reference = json.loads((FIXTURES / "chaostoolkit" / "journal-ok.json").read_text())
    assert set(reference) <= set(result.journal), "every CTK journal key is there"
    ours, theirs = result.journal["run"][0], reference["run"][0]
    assert set(theirs) <= set(ours)
    assert set(reference["steady_states"]["before"]) <= set(
        result.journal["steady_states"]["before"]
    )
    assert set(reference["rollbacks"][0]) <= set(result.journal["rollbacks"][0])
    assert result.journal["status"] == "completed" and result.journal["deviated"] is False


async def test_a_missed_tolerance_deviates_and_names_the_hypothesis(tmp_path: Path) -> None:
    scenario = _scenario(probe("opens-after-5", _ok(1000), equals(5), promise="opens after 5"))
    result, ctx = await _run_toy(tmp_path, scenario)
    assert result.verdict == "deviated"
    assert "opens-after-5" in result.reason
    assert [j.name for j in result.failed_hypotheses] == ["opens-after-5"]
    assert result.journal["deviated"] is True
    assert "rollback" in ctx.log
    assert exit_code([result]) == 1


async def test_a_crash_is_a_harness_error_and_rollbacks_still_run(tmp_path: Path) -> None:
    scenario = _scenario(probe("crashes", _crash), action("never", _ok("never")))
    result, ctx = await _run_toy(tmp_path, scenario)
    assert result.verdict == "error" and "boom" in result.reason
    assert "ok:never" not in ctx.log and "rollback" in ctx.log
    assert result.journal["run"][0]["status"] == "failed"
    assert result.journal["run"][0]["exception"]
    assert exit_code([result]) == 2


async def test_a_skipped_activity_is_recorded_not_judged(tmp_path: Path) -> None:
    result, _ = await _run_toy(tmp_path, _scenario(probe("elsewhere", _skip, equals(1))))
    assert result.verdict == "passed"
    entry = result.journal["run"][0]
    # CTK knows `succeeded` and `failed`: a skipped check is a run that says why it skipped.
    assert (entry["status"], entry["skipped"]) == ("succeeded", "not here")
    assert "tolerance_met" not in entry
    assert "elsewhere" not in {j.name for j in result.judgements}
    assert result.skipped == [
        {"name": "elsewhere", "phase": "method", "promise": "elsewhere", "reason": "not here"}
    ]
    assert "elsewhere" in result.reason and "not here" in result.reason
    assert summary([result], {}, 0)["scenarios"][0]["skipped_hypotheses"] == result.skipped


async def test_an_interruption_still_runs_the_rollbacks(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def hang(ctx: Any) -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    events = EventLog(None)
    ctx = _Ctx(events)
    task = asyncio.create_task(run_scenario(_scenario(action("hang", hang)), ctx, backend=None))  # type: ignore[arg-type]
    await started.wait()
    task.cancel()
    result = await task
    assert result.interrupted and result.verdict == "interrupted"
    assert "rollback" in ctx.log
    assert result.journal["status"] == "interrupted"


def test_exit_code_precedence() -> None:
    class R:
        def __init__(self, verdict: str) -> None:
            self.verdict = verdict

    def code(*verdicts: str) -> int:
        return exit_code([R(v) for v in verdicts])  # type: ignore[misc]

    assert code("passed", "skipped") == 0
    assert code("passed", "deviated") == 1
    assert code("deviated", "error") == 2
    assert code("error", "data_lost", "deviated") == 3


async def test_the_run_journal_is_one_ctk_journal(tmp_path: Path) -> None:
    first, _ = await _run_toy(
        tmp_path, _scenario(action("fault", _ok("on")), probe("count", _ok(5), equals(5)))
    )
    second, _ = await _run_toy(tmp_path, _scenario(probe("rate", _ok(0.5), at_most(0.4))))
    second.name = "toy2"
    absent = skipped(_scenario(action("x", _ok(1))), "absent", "not with --target", "sqlite")
    meta = {"seed": 3, "started": "2026-11-30T12:00:00+00:00",
            "finished": "2026-11-30T12:01:00+00:00", "duration_s": 60.0}  # fmt: skip
    combined = json.loads(json.dumps(journal([first, second, absent], meta, 1), default=str))
    check_with_chaoslib(combined)
    reference = json.loads((FIXTURES / "chaostoolkit" / "journal-ok.json").read_text())
    assert set(reference) <= set(combined)
    # The whole run: every scenario's activities in order, named after their scenario.
    assert [e["activity"]["name"] for e in combined["run"]] == [
        "toy: fault", "toy: count", "toy2: rate"
    ]  # fmt: skip
    assert [a["name"] for a in combined["experiment"]["method"]] == [
        "toy: fault", "toy: count", "toy2: rate", "absent: x"
    ]  # fmt: skip
    assert combined["run"][2]["scenario"] == "toy2"
    assert [p["activity"]["name"] for p in combined["steady_states"]["before"]["probes"]] == [
        "toy: closed", "toy2: closed"
    ]  # fmt: skip
    assert combined["steady_states"]["after"]["steady_state_met"] is True
    assert [e["activity"]["name"] for e in combined["rollbacks"]] == ["toy: undo", "toy2: undo"]
    assert (combined["status"], combined["deviated"]) == ("completed", True)
    assert combined["skipped"] == [{"scenario": "absent", "reason": "not with --target"}]
    assert combined["journal_files"] == [
        "journal-toy.json", "journal-toy2.json", "journal-absent.json"
    ]  # fmt: skip
    # Each scenario's own journal stays a CTK journal too, the skipped one `aborted`.
    for one in combined["journals"]:
        check_with_chaoslib(one)
    assert (combined["journals"][2]["status"], combined["journals"][2]["skipped"]) == (
        "aborted",
        True,
    )


async def test_reports_carry_seed_versions_and_commit(tmp_path: Path) -> None:
    result, _ = await _run_toy(tmp_path, _scenario(probe("n", _ok(5), equals(5))))
    meta = {"seed": 3, "versions": {"python": "3.11"}, "git": {"commit": "abc"}}
    combined = journal([result], meta, 0)
    assert combined["journals"][0]["experiment"]["title"] == "a toy"
    assert (combined["seed"], combined["git"], combined["status"]) == (
        3,
        {"commit": "abc"},
        "completed",
    )
    doc = summary([result], meta, 0)
    assert doc["scenarios"][0]["verdict"] == "passed"
    assert doc["scenarios"][0]["hypotheses"][0]["met"] is True


@pytest.mark.parametrize("name", NAMES)
def test_scenario_modules_document_themselves(name: str) -> None:
    scenario = next(s for s in load_all() if s.name == name)
    assert scenario.description.strip() and scenario.fault and scenario.title


@pytest.mark.parametrize(
    ("database_url", "postgres_url", "judged_on"),
    [
        (None, None, []),
        (None, "postgresql+asyncpg://pg/test", ["postgresql"]),
        ("postgresql+asyncpg://pg/test", None, ["postgresql"]),
    ],
)
def test_a_postgresql_only_scenario_is_skipped_on_sqlite_with_why(
    tmp_path: Path, database_url: str | None, postgres_url: str | None, judged_on: list[str]
) -> None:
    options = Options(seed=1, report_dir=tmp_path, database_url=database_url,
                      postgres_url=postgres_url)  # fmt: skip
    stack = Stack(options)
    items = plan([load("database_failover")], stack)
    reasons = {item.backend: _skip_reason(item, stack) for item in items}
    assert [backend for backend, why in reasons.items() if why is None] == judged_on
    assert all("PostgreSQL only" in why for why in reasons.values() if why is not None)
