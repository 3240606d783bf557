"""The Success Metrics table: measured values, strict targets, "not available" without data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from notebooks.reliability.failures import SuccessSummary
from notebooks.reliability.loadrun import LoadRun
from notebooks.reliability.metrics import Targets, display_table, success_metrics, to_records
from notebooks.reliability.testcount import TestCount


def test_nothing_measured_is_not_available() -> None:
    table = success_metrics()
    assert table["passed"].isna().all()
    assert table["measured"].str.startswith("not available").all()
    assert set(display_table(table)["result"]) == {"not measured"}
    assert all(r["passed"] is None and r["value"] is None for r in to_records(table))


def test_measured_values_and_strict_targets() -> None:
    load = LoadRun(
        folder=Path("reports/load"),
        summary={
            "error_rate": 0.01,
            "requests": 100,
            "rps": 5,
            "breaker_rejection_p99_ms": 21.0,
            "health_p99_ms": 16.0,
            "breaker_to_health_p99_ratio": 1.31,
            "thresholds": [],
        },
    )
    success = SuccessSummary(
        tasks=100, first_run_successes=96, recovered=3, retries=4, retry_successes=3
    )
    summary = pd.DataFrame(
        {
            "scenario": ["a", "b"],
            "verdict": ["passed", "deviated"],
            "held": [5, 4],
            "total": [5, 5],
            "mttd_open_s": [0.2, 0.5],
            "mttd_alert_s": [1.5, None],
        }
    )
    tests = TestCount(
        source="junit", collected=10, by_area={}, passed=10, failed=0, errors=0, skipped=0
    )
    table = success_metrics(load=load, success=success, chaos_summary=summary, tests=tests)
    rows = {r["metric"]: r for r in to_records(table)}
    assert rows["error rate"]["passed"] is False  # 1 % is not < 1 %
    assert rows["background task success"]["passed"] is True  # 96 % > 95 %
    assert rows["MTTD: fault to breaker open"]["value"] == 0.5
    assert "worst: b" in rows["MTTD: fault to breaker open"]["source"]
    assert rows["circuit breaker response p99"]["passed"] is True
    assert "1.31x GET /health" in rows["circuit breaker response p99"]["measured"]
    assert rows["tests"]["passed"] is True
    assert rows["chaos hypotheses"]["passed"] is False
    assert "not passed: b" in rows["chaos hypotheses"]["measured"]


def test_detection_from_events_and_custom_targets() -> None:
    detection = pd.DataFrame(
        {"scenario": ["generated"], "mttd_open_s": [400.0], "mttd_alert_s": [None]}
    )
    table = success_metrics(detection=detection, targets=Targets(mttd_s=600))
    row = table.set_index("metric").loc["MTTD: fault to breaker open"]
    assert bool(row["passed"]) is True
    assert row["target"] == "< 10.0 min"


def test_detection_from_a_journal_alone_comes_last_and_says_how() -> None:
    journal = pd.DataFrame(
        {
            "scenario": ["bgg_outage", "bgg_blackhole"],
            "mttd_open_s": [0.152, 2.023],
            "open_basis": ["probe end", "opened_at"],
            "mttd_alert_s": [1.258, None],
            "alert_basis": ["measured", None],
        }
    )
    rows = {r["metric"]: r for r in to_records(success_metrics(journal_detection=journal))}
    opened = rows["MTTD: fault to breaker open"]
    assert (opened["value"], opened["passed"]) == (2.023, True)
    assert opened["source"] == "chaos journal (worst: bgg_blackhole)"
    alert = rows["MTTD: fault to alert"]
    assert alert["source"] == "chaos journal (worst: bgg_outage)"
    slow = journal.assign(open_basis=["opened_at", "probe end"])
    rows = {r["metric"]: r for r in to_records(success_metrics(journal_detection=slow))}
    assert rows["MTTD: fault to breaker open"]["source"] == (
        "chaos journal (worst: bgg_blackhole; by probe end, an upper bound)"
    )
    # The summary and the events win over the journal.
    events = pd.DataFrame({"scenario": ["generated"], "mttd_open_s": [9.0], "mttd_alert_s": [None]})
    rows = {
        r["metric"]: r
        for r in to_records(success_metrics(detection=events, journal_detection=journal))
    }
    assert rows["MTTD: fault to breaker open"]["value"] == 9.0
    assert rows["MTTD: fault to alert"]["source"] == "chaos journal (worst: bgg_outage)"
    # pandas-stubs take no None in a list given to assign; pandas stores it as a missing value.
    nothing = journal.assign(mttd_open_s=[None, None], mttd_alert_s=[None, None])  # type: ignore[list-item]
    rows = {r["metric"]: r for r in to_records(success_metrics(journal_detection=nothing))}
    assert rows["MTTD: fault to breaker open"]["measured"].startswith("not available")
