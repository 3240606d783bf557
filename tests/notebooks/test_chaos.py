"""The chaos harness's reports: summary, journal (ours and Chaos Toolkit's), events, and what
is derived from them (transitions, outage and fault windows, time to detection)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notebooks.reliability import chaos
from notebooks.reliability.errors import InputError, MalformedRowError
from tests.notebooks.support import FIXTURES

CTK = FIXTURES / "chaostoolkit"


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    lines = []
    for i, e in enumerate(events):
        lines.append(json.dumps({"time": e.pop("time"), "t": i, "scenario": "s", **e}))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def at(second: float) -> str:
    return (pd.Timestamp("2026-11-30T04:00:00Z") + pd.Timedelta(seconds=second)).isoformat()


@pytest.fixture
def events(tmp_path: Path) -> pd.DataFrame:
    path = write_events(
        tmp_path / "events.jsonl",
        [
            {"time": at(0), "kind": "fault", "fault": "cdn-wrong-type", "on": True},
            {"time": at(10), "kind": "fault", "fault": "cdn-503", "on": True},
            {
                "time": at(11.5),
                "kind": "breaker_transition",
                "breaker": "Image CDN",
                "from_state": "closed",
                "to_state": "open",
                "at": at(11).replace("+00:00", "Z"),
            },
            {
                "time": at(12),
                "kind": "alert",
                "rule": "breaker_open",
                "status": "firing",
                "at": at(12),
            },
            {"time": at(14), "kind": "fault", "fault": "cdn-503", "on": False},
            {
                "time": at(16.5),
                "kind": "breaker_transition",
                "breaker": "Image CDN",
                "from_state": "open",
                "to_state": "half_open",
                "at": at(16),
            },
            {
                "time": at(16.6),
                "kind": "breaker_transition",
                "breaker": "Image CDN",
                "from_state": "half_open",
                "to_state": "closed",
                "at": at(16.2),
            },
            {"time": at(20), "kind": "fault", "fault": "bgg-503", "on": True},
            {
                "time": at(21),
                "kind": "breaker_transition",
                "breaker": "BGG API",
                "from_state": "closed",
                "to_state": "open",
                "at": at(20.5),
            },
            {"time": at(30), "kind": "fault", "fault": "all", "on": False},
        ],
    )
    return chaos.load_chaos_events(path)


def test_transitions_use_the_services_time(events: pd.DataFrame) -> None:
    transitions = chaos.breaker_transitions(events)
    assert transitions["at"].iloc[0] == pd.Timestamp("2026-11-30T04:00:11Z")
    assert transitions["to_state"].tolist() == ["open", "half_open", "closed", "open"]


def test_outage_windows(events: pd.DataFrame) -> None:
    windows = chaos.outage_windows(chaos.breaker_transitions(events))
    assert windows[["breaker", "duration_s", "open_ended"]].values.tolist() == [
        ["Image CDN", 5.2, False],
        ["BGG API", 0.0, True],
    ]
    end = pd.Timestamp("2026-11-30T04:00:40Z")
    later = chaos.outage_windows(chaos.breaker_transitions(events), end=end)
    assert later["duration_s"].tolist()[1] == 19.5
    assert chaos.outage_windows(chaos.breaker_transitions(events.iloc[0:0])).empty


def test_fault_windows(events: pd.DataFrame) -> None:
    faults = chaos.fault_windows(events)
    assert faults["fault"].tolist() == ["cdn-wrong-type", "cdn-503", "bgg-503"]
    assert faults["end"].tolist()[1] == pd.Timestamp("2026-11-30T04:00:14Z")
    assert faults["end"].tolist()[0] == pd.Timestamp("2026-11-30T04:00:30Z")  # ended by "all"


def test_detection_is_attributed_to_the_latest_matching_fault(events: pd.DataFrame) -> None:
    detected = chaos.detection_times(events).set_index("fault")
    assert pd.isna(detected["mttd_open_s"]["cdn-wrong-type"])  # .loc's scalar is too wide for isna
    assert detected.loc["cdn-503", "mttd_open_s"] == 1.0
    assert detected.loc["cdn-503", "mttd_alert_s"] == 2.0
    assert detected.loc["bgg-503", "breaker"] == "BGG API"
    assert detected.loc["bgg-503", "mttd_open_s"] == 0.5


def test_the_real_chaos_toolkit_journals() -> None:
    for name, deviated in (("journal-ok.json", False), ("journal-deviated.json", True)):
        experiments, activities = chaos.load_chaos_journal(CTK / name)
        assert len(experiments) == 1
        assert bool(experiments["deviated"].iloc[0]) is deviated
        assert {"before", "method"} <= set(activities["phase"])
        assert activities["start"].notna().all()
        assert str(activities["start"].dtype) == "datetime64[us, UTC]"


def test_a_harness_journal_and_summary(tmp_path: Path) -> None:
    ctk = json.loads((CTK / "journal-ok.json").read_text())
    journal = {
        "chaoslib-version": "1.44.0",
        "status": "completed",
        "deviated": False,
        "journals": [
            {
                **ctk,
                "scenario": "bgg_outage",
                "steady_states": {**ctk["steady_states"], "during": [ctk["run"][0]]},
            }
        ],
    }
    (tmp_path / "journal.json").write_text(json.dumps(journal), "utf-8")
    experiments, activities = chaos.load_chaos_journal(tmp_path / "journal.json")
    assert experiments["scenario"].tolist() == ["bgg_outage"]
    assert "during" in set(activities["phase"])
    summary = {
        "seed": 1,
        "exit_code": 0,
        "verdict": "passed",
        "scenarios": [
            {
                "name": "bgg_outage",
                "scenario": "bgg_outage",
                "backend": "sqlite",
                "verdict": "passed",
                "held": 15,
                "total": 15,
                "figures": {"mttd_open_s": 0.238, "rejection_p99_ms": 34.2},
                "tasks": {"lost": 0, "duplicated": 0, "lost_game_ids": []},
            }
        ],
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary), "utf-8")
    frame = chaos.load_chaos_summary(tmp_path / "summary.json")
    assert frame[["scenario", "mttd_open_s", "tasks_lost"]].values.tolist() == [
        ["bgg_outage", 0.238, 0]
    ]
    assert frame.attrs["exit_code"] == 0


def test_bad_reports(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        chaos.load_chaos_summary(tmp_path / "summary.json")
    (tmp_path / "s.json").write_text("{}", "utf-8")
    with pytest.raises(InputError, match="not a chaos summary"):
        chaos.load_chaos_summary(tmp_path / "s.json")
    with pytest.raises(InputError, match="not a Chaos Toolkit journal"):
        chaos.load_chaos_journal(tmp_path / "s.json")
    (tmp_path / "e.jsonl").write_text('{"kind": "fault"}\n', "utf-8")
    with pytest.raises(MalformedRowError, match="line 1: is not a harness event"):
        chaos.load_chaos_events(tmp_path / "e.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", "utf-8")
    with pytest.raises(InputError, match="is empty"):
        chaos.load_chaos_events(tmp_path / "empty.jsonl")


# -- time to detection from a journal alone ---------------------------------------------------

T0 = pd.Timestamp("2026-11-30T06:20:35Z")


def entry(
    kind: str, name: str, start: float, end: float, output: Any, **extra: Any
) -> dict[str, Any]:
    """One journal entry, as Chaos Toolkit (and the harness) write it."""
    return {
        "activity": {"type": kind, "name": name, "provider": {"type": "python"}},
        "output": output,
        "status": "succeeded",
        "start": (T0 + pd.Timedelta(seconds=start)).isoformat(),
        "end": (T0 + pd.Timedelta(seconds=end)).isoformat(),
        "duration": end - start,
        **extra,
    }


def journal(
    scenario: str | None, run: list[dict[str, Any]], during: list[Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "chaoslib-version": "bgg-reliability-chaos 1.0",
        "experiment": {"title": f"title of {scenario}", "method": []},
        "status": "completed",
        "deviated": False,
        "start": T0.isoformat(),
        "end": (T0 + pd.Timedelta(seconds=9)).isoformat(),
        "duration": 9.0,
        "steady_states": {
            "before": {
                "steady_state_met": True,
                "probes": [entry("probe", "bgg-breaker-closed", -1, -0.9, "closed")],
            },
            "after": None,
            "during": during or [],
        },
        "run": run,
        "rollbacks": [entry("action", "restore-upstreams", 8, 9, {"states": {"a": "open"}})],
    }
    if scenario is not None:
        data["scenario"] = scenario
    return data


#: The method of `bgg_outage` as `python -m chaos run` journals it (outputs from a real run).
BGG_OUTAGE = [
    entry("action", "bgg-answers-503", 0.0, 0.0003, {"status": 503}),
    entry(
        "probe",
        "breaker-opens-after-fail-max",
        0.0003,
        0.152,
        {"statuses": [502, 502], "upstream_requests_at_open": 5, "opened": True},
        tolerance_met=True,
    ),
    entry("probe", "rejections-fast", 0.152, 0.49, {"count": 200, "p99_ms": 3.75}),
    entry("probe", "alert-fires", 0.49, 1.31, {"fired": True, "mttd_alert_s": 1.258}),
    entry("action", "bgg-recovers", 1.31, 1.32, {"status": 200}),
    entry("probe", "one-half-open-trial", 1.32, 3.3, {"states": ["closed"], "closed": True}),
    entry("probe", "alert-fires-once-resolves-once", 3.3, 3.31, {"fired": 1, "resolved": 1}),
]
#: `bgg_bad_answers` injects its faults inside probes: no action, so no fault start.
BAD_ANSWERS = [
    entry("probe", "not-found-never-opens", 0.0, 0.05, {"state": "closed"}),
    entry("probe", "fifth-bad-answer-opens", 0.05, 0.06, {"state": "open"}),
]
#: `cdn_outage`: the Image CDN breaker opens, but no probe output says so.
CDN_OUTAGE = [
    entry("action", "cdn-down", 0.0, 0.0003, {"proxy": "cdn", "enabled": False}),
    entry("probe", "bgg-breaker-untouched", 0.1, 0.2, {"state": "closed", "untouched": True}),
]


def test_mttd_from_a_real_chaos_toolkit_journal() -> None:
    data = json.loads((CTK / "journal-ok.json").read_text())
    _, activities = chaos.load_chaos_journal(CTK / "journal-ok.json")
    detected = chaos.journal_detection(activities)
    assert len(detected) == 1
    row = detected.iloc[0]
    fault = pd.Timestamp(data["run"][0]["start"])
    seen = pd.Timestamp(data["run"][1]["end"])  # `read-breaker-state` answered "open"
    assert row["fault"] == "inject-bgg-outage"
    assert row["fault_start"] == fault
    assert row["open_probe"] == "read-breaker-state"
    assert row["open_basis"] == "probe end"
    assert row["mttd_open_s"] == pytest.approx((seen - fault).total_seconds())
    assert pd.isna(row["mttd_alert_s"]) and row["alert"] is None


def test_mttd_from_the_harness_journals(tmp_path: Path) -> None:
    for name, run in (("bgg_outage", BGG_OUTAGE), ("bgg_bad_answers", BAD_ANSWERS),
                      ("cdn_outage", CDN_OUTAGE)):  # fmt: skip
        (tmp_path / f"journal-{name}.json").write_text(json.dumps(journal(name, run)), "utf-8")
    _, activities = chaos.load_chaos_journal(tmp_path)
    assert "output" in activities.columns
    detected = chaos.journal_detection(activities).set_index("scenario")
    assert "bgg_bad_answers" not in detected.index  # no action, no fault start
    outage = detected.loc["bgg_outage"]
    assert outage["fault"] == "bgg-answers-503"
    assert outage["breaker"] == "BGG API"
    assert outage["mttd_open_s"] == pytest.approx(0.152)
    assert outage["open_probe"] == "breaker-opens-after-fail-max"
    assert outage["mttd_alert_s"] == 1.258  # the harness's own measurement, as it is
    assert (outage["alert"], outage["alert_basis"]) == ("alert-fires", "measured")
    cdn = detected.loc["cdn_outage"]
    assert isinstance(cdn, pd.Series)  # one scenario, one row
    assert cdn["breaker"] == "Image CDN"
    assert pd.isna(cdn["mttd_open_s"]) and cdn["open_probe"] is None
    assert str(detected["fault_start"].dtype) == "datetime64[us, UTC]"


def test_a_service_opened_at_and_a_continuous_steady_state_probe() -> None:
    opened = (T0 + pd.Timedelta(seconds=1.75)).isoformat().replace("+00:00", "Z")
    run = [
        entry("action", "blackhole-bgg", 1.0, 1.01, {"toxic": "timeout"}),
        entry("probe", "breaker-opens", 2.0, 2.5, {"state": "open", "opened_at": opened}),
    ]
    # Chaos Toolkit's continuous steady state: a list of checks, each with its probes; one
    # sees the breaker open before any method probe does. And an alert without a figure.
    during = [
        {"steady_state_met": True, "probes": [entry("probe", "state", 1.1, 1.2, "closed")]},
        {"steady_state_met": False, "probes": [entry("probe", "state", 1.4, 1.6, "open")]},
    ]
    alert = entry("probe", "alert", 3.0, 3.5, {"firing": True})
    (first,) = _detect(journal("s", [*run, alert], during)).to_dict("records")
    assert first["open_probe"] == "state" and first["mttd_open_s"] == pytest.approx(0.6)
    assert (first["alert_basis"], first["mttd_alert_s"]) == ("probe end", pytest.approx(2.5))
    (exact,) = _detect(journal("s", run)).to_dict("records")
    # The service's own `opened_at`, when the output has it, rather than the probe's end.
    assert exact["open_basis"] == "opened_at"
    assert exact["mttd_open_s"] == pytest.approx(0.75)


def _detect(data: dict[str, Any]) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "experiment.json"
        path.write_text(json.dumps(data), "utf-8")
        _, activities = chaos.load_chaos_journal(path)
    return chaos.journal_detection(activities)


@pytest.mark.parametrize(
    ("output", "is_open"),
    [
        ("open", True),
        (" OPEN ", True),
        ("half_open", False),
        ({"state": "open"}, True),
        ({"state": "closed"}, False),
        ({"open": True}, True),
        ({"opened": True}, True),
        ({"opened": 1}, False),
        ({"states": ["closed", "open"]}, True),
        ({"states": {"a": "closed"}}, False),
        ({"state_after_fifth": "open"}, False),
        (None, False),
        (["open"], False),
    ],
)
def test_what_counts_as_seeing_the_breaker_open(output: object, is_open: bool) -> None:
    assert chaos.records_open(output) is is_open


def test_what_counts_as_an_alert() -> None:
    assert chaos.records_alert({"fired": True})
    assert chaos.records_alert({"firing": True})
    assert not chaos.records_alert({"fired": 1, "resolved": 1})
    assert not chaos.records_alert({"fired": False})
    assert not chaos.records_alert("fired")


@settings(max_examples=40, deadline=None)
@given(
    fault=st.floats(0, 100, allow_nan=False),
    probes=st.lists(
        st.tuples(st.floats(0, 50), st.floats(0, 10), st.sampled_from(["open", "closed"])),
        max_size=6,
    ),
)
def test_journal_detection_is_the_first_probe_that_saw_it_open(
    fault: float, probes: list[tuple[float, float, str]]
) -> None:
    run = [entry("action", "bgg-down", fault, fault + 0.001, None)]
    for index, (offset, length, state) in enumerate(probes):
        start = fault + offset
        run.append(entry("probe", f"p{index}", start, start + length, {"state": state}))
    (row,) = _detect(journal("s", run)).to_dict("records")
    ends = [offset + length for offset, length, state in probes if state == "open"]
    if not ends:
        assert pd.isna(row["mttd_open_s"])
    else:
        assert row["mttd_open_s"] == pytest.approx(min(ends), abs=2e-6)


def run_wide(*scenarios: tuple[str, dict[str, Any]], wrapped: bool) -> dict[str, Any]:
    """A whole run as one Chaos Toolkit journal, each result marked with its scenario (as
    `python -m chaos run` writes it), with or without the scenarios' own `journals`."""

    def tagged(name: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                **e,
                "scenario": name,
                "activity": {**e["activity"], "name": f"{name}: {e['activity']['name']}"},
            }
            for e in entries
        ]

    data = journal(None, [e for n, j in scenarios for e in tagged(n, j["run"])])
    data["experiment"] = {"title": "bgg-reliability chaos run"}
    if wrapped:
        data["journals"] = [j for _, j in scenarios]
    return data


def test_journal_layouts(tmp_path: Path) -> None:
    outage = journal("bgg_outage", BGG_OUTAGE)
    cdn = journal("cdn_outage", CDN_OUTAGE)
    layouts = {
        # The older journal.json: a wrapper with one journal per scenario in `journals`.
        "wrapper": ({"journals": [outage, cdn]}, False),
        # The run as one CTK journal that carries the scenarios' journals too.
        "run-wide with journals": (
            run_wide(("bgg_outage", outage), ("cdn_outage", cdn), wrapped=True),
            False,
        ),
        # ... without them, beside the scenarios' journal-<scenario>.json.
        "run-wide beside scenarios": (
            run_wide(("bgg_outage", outage), ("cdn_outage", cdn), wrapped=False),
            True,
        ),
    }
    for layout, (data, beside) in layouts.items():
        folder = tmp_path / layout.replace(" ", "-")
        folder.mkdir()
        (folder / "journal.json").write_text(json.dumps(data), "utf-8")
        if beside:
            (folder / "journal-bgg_outage.json").write_text(json.dumps(outage), "utf-8")
            (folder / "journal-cdn_outage.json").write_text(json.dumps(cdn), "utf-8")
        paths = (folder / "journal.json", folder) if beside else (folder / "journal.json",)
        for path in paths:
            experiments, activities = chaos.load_chaos_journal(path)
            assert sorted(experiments["scenario"]) == ["bgg_outage", "cdn_outage"], layout
            detected = chaos.journal_detection(activities).set_index("scenario")
            assert detected.loc["bgg_outage", "mttd_open_s"] == pytest.approx(0.152), layout
            assert detected.loc["bgg_outage", "fault"] == "bgg-answers-503", layout
    # The run-wide journal alone: one experiment, its results still told apart by scenario.
    alone = tmp_path / "alone"
    alone.mkdir()
    data = run_wide(("bgg_outage", outage), ("cdn_outage", cdn), wrapped=False)
    (alone / "journal.json").write_text(json.dumps(data), "utf-8")
    for path in (alone / "journal.json", alone):
        experiments, activities = chaos.load_chaos_journal(path)
        assert experiments["scenario"].tolist() == ["bgg-reliability chaos run"]
        detected = chaos.journal_detection(activities).set_index("scenario")
        assert sorted(detected.index) == ["bgg_outage", "cdn_outage"]
        assert detected.loc["bgg_outage", "mttd_open_s"] == pytest.approx(0.152)
        assert detected.loc["bgg_outage", "fault"] == "bgg-answers-503"
        assert detected.loc["bgg_outage", "breaker"] == "BGG API"
    with pytest.raises(InputError, match="holds no journal-"):
        chaos.load_chaos_journal(tmp_path)


def test_a_folder_of_runs_means_its_latest_journal(tmp_path: Path) -> None:
    runs = tmp_path / "chaos"
    for name, scenario, rules in (("run-a", "bgg_outage", BGG_OUTAGE),
                                  ("run-b", "cdn_outage", CDN_OUTAGE)):  # fmt: skip
        (runs / name).mkdir(parents=True)
        only = {"journals": [journal(scenario, rules)]}
        (runs / name / "journal.json").write_text(json.dumps(only), "utf-8")
    (runs / "latest").symlink_to("run-a")
    experiments, _ = chaos.load_chaos_journal(runs)
    assert experiments["scenario"].tolist() == ["bgg_outage"]


def test_a_bad_time_in_a_scenario_journal_is_named(tmp_path: Path) -> None:
    broken = journal("bgg_outage", BGG_OUTAGE)
    broken["run"][1]["end"] = "soon"
    (tmp_path / "journal-bgg_outage.json").write_text(json.dumps(broken), "utf-8")
    with pytest.raises(MalformedRowError, match=r"journal-bgg_outage\.json activity "
                       r"breaker-opens-after-fail-max: end 'soon' is not a timestamp"):  # fmt: skip
        chaos.load_chaos_journal(tmp_path)


def test_breaker_of() -> None:
    assert chaos.breaker_of("bgg-503") == "BGG API"
    assert chaos.breaker_of("BGG-blackhole") == "BGG API"
    assert chaos.breaker_of("cdn-refused") == "Image CDN"
    assert chaos.breaker_of("cdn") == "Image CDN"
    assert chaos.breaker_of("redis-down") is None
    assert chaos.breaker_of("blackhole-bgg") is None  # named by the dependency first
    assert chaos.breaker_of("") is None
