"""Thresholds: pass, breach, and never a pass on no requests."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from loadtests import names
from loadtests.thresholds import (
    Threshold,
    build_thresholds,
    evaluate,
    evaluate_all,
    format_table,
)
from loadtests.windows import Counts, Snapshot

DEFAULTS = {
    "shape": "outage",
    "slo_error_rate": 0.01,
    "slo_breaker_p99_ms": "auto",
    "slo_public_p95_ms": 500.0,
    "slo_breaker_health_ratio": None,
}


def snapshot(rows: Iterable[tuple[str, list[int], int]]) -> Snapshot:
    """`(name, response times in ms, failures)` per entry."""
    entries = {}
    for name, times, failures in rows:
        histogram: dict[int, int] = {}
        for ms in times:
            histogram[ms] = histogram.get(ms, 0) + 1
        entries[(name, "GET")] = Counts(len(times), failures, histogram)
    return Snapshot(60.0, entries)


def by_name(thresholds: list[Threshold]) -> dict[str, Threshold]:
    return {threshold.name: threshold for threshold in thresholds}


def test_breaker_threshold_is_automatic_with_the_outage_shape_only() -> None:
    outage = by_name(build_thresholds(DEFAULTS))
    assert outage["breaker_rejection_p99_ms"].target == 50.0
    assert set(outage) == {"error_rate", "breaker_rejection_p99_ms", "public_p95_ms"}
    steady = by_name(build_thresholds({**DEFAULTS, "shape": "steady"}))
    assert "breaker_rejection_p99_ms" not in steady
    forced = by_name(build_thresholds({**DEFAULTS, "shape": "steady", "slo_breaker_p99_ms": 20}))
    assert forced["breaker_rejection_p99_ms"].target == 20.0
    off = build_thresholds(dict.fromkeys(DEFAULTS) | {"shape": "outage"})
    assert off == []


def test_all_held() -> None:
    stats = snapshot(
        [
            (names.PUBLIC_LIST, [10] * 95 + [400] * 5, 0),
            (names.PUBLIC_SEARCH, [30] * 20, 0),
            (names.PUBLIC_DETAIL, [15] * 20, 0),
            (names.IMPORT_BREAKER_OPEN, [3] * 99 + [45], 0),
            (names.HEALTH, [1] * 100, 0),
        ]
    )
    verdicts = evaluate_all(build_thresholds(DEFAULTS), stats)
    assert all(verdict.passed for verdict in verdicts), verdicts
    assert [v.measured for v in verdicts] == [0.0, 45.0, 400.0]
    table = format_table(verdicts)
    assert "all 3 threshold(s) held" in table
    assert "p99 of import (breaker open)" in table


def test_breaches_are_named_with_target_and_measurement() -> None:
    stats = snapshot(
        [
            (names.PUBLIC_SEARCH, [10] * 90 + [900] * 10, 2),
            (names.IMPORT_BREAKER_OPEN, [3] * 97 + [80] * 3, 0),
        ]
    )
    verdicts = {v.threshold.name: v for v in evaluate_all(build_thresholds(DEFAULTS), stats)}
    assert not verdicts["error_rate"].passed
    assert verdicts["error_rate"].measured == pytest.approx(0.01)  # 2 of 200: not below 1 %
    assert not verdicts["breaker_rejection_p99_ms"].passed
    assert verdicts["breaker_rejection_p99_ms"].measured == 80.0
    assert not verdicts["public_p95_ms"].passed
    table = format_table(list(verdicts.values()))
    assert "3 threshold(s) breached" in table
    assert "BREACH breaker_rejection_p99_ms (--slo-breaker-p99-ms)" in table
    assert "measured 80 ms, target < 50 ms" in table


def test_no_requests_in_the_entry_fails_clearly() -> None:
    stats = snapshot([(names.PUBLIC_LIST, [10] * 50, 0), (names.HEALTH, [1] * 50, 0)])
    verdict = evaluate(by_name(build_thresholds(DEFAULTS))["breaker_rejection_p99_ms"], stats)
    assert not verdict.passed
    assert verdict.measured is None
    assert "no requests named 'import (breaker open)'" in verdict.message
    assert "no data" in format_table([verdict])
    assert verdict.as_dict() == {
        "name": "breaker_rejection_p99_ms",
        "target": 50.0,
        "measured": None,
        "passed": False,
        "label": "p99 of import (breaker open)",
        "option": "--slo-breaker-p99-ms",
        "message": verdict.message,
    }


def test_no_requests_at_all_fails_the_error_rate() -> None:
    verdict = evaluate(by_name(build_thresholds(DEFAULTS))["error_rate"], snapshot([]))
    assert not verdict.passed
    assert verdict.message == "no requests were made at all"


def test_ratio_of_breaker_to_health() -> None:
    options = {**DEFAULTS, "slo_breaker_health_ratio": 3.0}
    threshold = by_name(build_thresholds(options))["breaker_to_health_p99_ratio"]
    held = snapshot([(names.IMPORT_BREAKER_OPEN, [6] * 100, 0), (names.HEALTH, [4] * 100, 0)])
    assert evaluate(threshold, held).measured == 1.5
    assert evaluate(threshold, held).passed
    zero_health = snapshot([(names.IMPORT_BREAKER_OPEN, [2] * 10, 0), (names.HEALTH, [0] * 10, 0)])
    assert evaluate(threshold, zero_health).measured == 2.0  # 0 ms counts as 1 ms
    no_health = snapshot([(names.IMPORT_BREAKER_OPEN, [2] * 10, 0)])
    verdict = evaluate(threshold, no_health)
    assert not verdict.passed
    assert "'/health'" in verdict.message


def test_target_is_a_strict_upper_bound() -> None:
    threshold = by_name(build_thresholds(DEFAULTS))["breaker_rejection_p99_ms"]
    assert not evaluate(threshold, snapshot([(names.IMPORT_BREAKER_OPEN, [50] * 10, 0)])).passed
    assert evaluate(threshold, snapshot([(names.IMPORT_BREAKER_OPEN, [49] * 10, 0)])).passed


def test_each_public_read_is_judged_on_its_own() -> None:
    threshold = by_name(build_thresholds(DEFAULTS))["public_p95_ms"]
    stats = snapshot(
        [
            (names.PUBLIC_LIST, [10] * 1000, 0),
            (names.PUBLIC_DETAIL, [20] * 1000, 0),
            # 0.5 % of public reads: pooled, their p95 would be 20 ms and pass.
            (names.PUBLIC_SEARCH, [600] * 10, 0),
            (names.IMPORT, [5000] * 100, 0),  # not a public read
        ]
    )
    verdict = evaluate(threshold, stats)
    assert (verdict.measured, verdict.passed) == (600.0, False)
    assert verdict.message.endswith(f"(slowest: {names.PUBLIC_SEARCH})")
    fast = snapshot([(name, [20] * 100, 0) for name in names.PUBLIC_READS])
    assert evaluate(threshold, fast).passed


def test_a_public_read_that_got_no_requests_fails_the_public_threshold() -> None:
    threshold = by_name(build_thresholds(DEFAULTS))["public_p95_ms"]
    verdict = evaluate(threshold, snapshot([(names.PUBLIC_LIST, [10] * 100, 0)]))
    assert (verdict.measured, verdict.passed) == (None, False)
    assert (
        repr(names.PUBLIC_SEARCH) in verdict.message
        and repr(names.PUBLIC_DETAIL) in verdict.message
    )
