"""summary.json: the keys CI and the notebooks read."""

from __future__ import annotations

import json
from pathlib import Path

from loadtests import names, plans, summary
from loadtests.thresholds import build_thresholds, evaluate_all
from loadtests.windows import Counts, Snapshot

OPTIONS = {
    "shape": "outage",
    "slo_error_rate": 0.01,
    "slo_breaker_p99_ms": "auto",
    "slo_public_p95_ms": 500.0,
    "slo_breaker_health_ratio": None,
}


def counts(requests: int, failures: int, ms: int) -> Counts:
    return Counts(requests, failures, {ms: requests})


def test_build_has_the_contract_keys_and_phase_figures(tmp_path: Path) -> None:
    warm = Snapshot(0.0, {})
    down = Snapshot(20.0, {(names.PUBLIC_LIST, "GET"): counts(100, 0, 10)})
    final = Snapshot(
        40.0,
        {
            (names.PUBLIC_LIST, "GET"): counts(200, 1, 10),
            (names.PUBLIC_SEARCH, "GET"): counts(10, 0, 12),
            (names.PUBLIC_DETAIL, "GET"): counts(10, 0, 8),
            (names.IMPORT_BREAKER_OPEN, "POST"): counts(50, 0, 6),
            (names.IMPORT_BREAKER_OPENING, "POST"): counts(2, 0, 900),
            (names.HEALTH, "GET"): counts(40, 0, 3),
        },
    )
    phases = plans.outage(10, 5.0, 40.0, (0.5, 0.75))
    records = [
        summary.PhaseRecord(phases[0], warm, "closed"),
        summary.PhaseRecord(phases[1], down, "open"),
    ]
    verdicts = evaluate_all(build_thresholds(OPTIONS), final)
    result = summary.build(
        final,
        verdicts,
        shape="outage",
        options=OPTIONS,
        started_at=0.0,
        finished_at=40.0,
        phases=records,
    )
    assert result["passed"] is True
    assert result["requests"] == 312
    assert result["error_rate"] == round(1 / 312, 6)
    assert result["rps"] == 7.8
    assert result["breaker_rejection_p99_ms"] == 6
    assert result["health_p99_ms"] == 3
    assert result["breaker_to_health_p99_ratio"] == 2.0
    assert result["groups"]["breaker_opening"]["p99_ms"] == 900
    assert result["groups"]["all_rejections"]["requests"] == 52
    assert [t["name"] for t in result["thresholds"]] == [
        "error_rate",
        "breaker_rejection_p99_ms",
        "public_p95_ms",
    ]
    assert {"name", "target", "measured", "passed"} <= set(result["thresholds"][0])
    warm_phase, outage_phase = result["phases"]
    assert warm_phase["all"]["requests"] == 100
    assert (warm_phase["start_s"], warm_phase["end_s"]) == (0.0, 20.0)
    assert outage_phase["all"]["requests"] == 212
    assert outage_phase["breaker_rejection"]["requests"] == 50
    assert outage_phase["breaker_at_end"] == "open"
    assert result["started_at"] == "1970-01-01T00:00:00Z"

    path = tmp_path / "deep" / "summary.json"
    summary.write(path, result)
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_harness_error_fails_the_run() -> None:
    result = summary.build(
        Snapshot(1.0, {(names.HEALTH, "GET"): counts(1, 0, 1)}),
        [],
        shape="outage",
        options={},
        started_at=0.0,
        finished_at=1.0,
        harness_errors=["the fake BGG's control API is unreachable"],
    )
    assert result["passed"] is False
    assert result["breaker_rejection_p99_ms"] is None
    assert result["breaker_to_health_p99_ratio"] is None


def test_ramp_steps_feed_the_knee_finder() -> None:
    phases = plans.ramp(20, 10.0, 20.0, 2)
    start = Snapshot(0.0, {(names.PUBLIC_LIST, "GET"): counts(999, 0, 1)})  # before the clear
    middle = Snapshot(10.0, {(names.PUBLIC_LIST, "GET"): counts(1000, 0, 10)})
    final = Snapshot(20.0, {(names.PUBLIC_LIST, "GET"): Counts(1500, 0, {10: 1000, 80: 500})})
    records = [summary.PhaseRecord(phases[0], start), summary.PhaseRecord(phases[1], middle)]
    steps = summary.ramp_steps(records, final)
    assert [(s.users, s.rps, s.p95_ms) for s in steps] == [(10, 100.0, 10.0), (20, 50.0, 80.0)]
