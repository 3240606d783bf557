"""The chaos harness's reports: summary, journal (ours and Chaos Toolkit's), events, and what
is derived from them (transitions, outage and fault windows, time to detection)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

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
    assert pd.isna(detected.loc["cdn-wrong-type", "mttd_open_s"])
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
