"""Service-level targets as thresholds, checked like k6's at the end of a run.

A `Threshold` names what it measures (the error rate over all requests, a percentile of some
entries, or the ratio of two entries' percentiles) and a target the measured value must stay
strictly below. A threshold over entries that got no requests fails with a message saying
so: a target is never met by measuring nothing.

`build_thresholds(options)` turns the `--slo-*` options into thresholds; `evaluate` checks
them against a snapshot of the statistics; `format_table` prints target / measured / result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from loadtests import names
from loadtests.settings import BREAKER_SLO_AUTO_MS
from loadtests.windows import Snapshot, figures

Kind = Literal["error_rate", "percentile", "worst_percentile", "ratio"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """`measured < target`, where `measured` is given by `kind` over `entries`.

    `percentile` pools the entries' requests; `worst_percentile` takes each entry's own
    percentile and keeps the highest, so a slow endpoint cannot hide behind a busy fast one.
    """

    name: str
    """Stable key in `summary.json`, e.g. `breaker_rejection_p99_ms`."""
    label: str
    """What the table shows, e.g. `p99 of import (breaker open)`."""
    option: str
    """The option that set it, named in messages."""
    kind: Kind
    target: float
    entries: tuple[str, ...] = ()
    """Entry names measured; empty = every request (error rate only)."""
    percent: float = 0.99
    over: tuple[str, ...] = ()
    """For a ratio: the entries of the denominator."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one threshold."""

    threshold: Threshold
    measured: float | None
    passed: bool
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """`{"name", "target", "measured", "passed", ...}` for `summary.json`."""
        return {
            "name": self.threshold.name,
            "target": self.threshold.target,
            "measured": self.measured,
            "passed": self.passed,
            "label": self.threshold.label,
            "option": self.threshold.option,
            "message": self.message,
        }


def build_thresholds(options: Mapping[str, Any]) -> list[Threshold]:
    """The thresholds the options ask for (`None` = off; breaker `auto` = 50 ms on outage)."""
    found: list[Threshold] = []
    rate = options.get("slo_error_rate")
    if rate is not None:
        found.append(
            Threshold(
                "error_rate",
                "error rate, all requests",
                "--slo-error-rate",
                "error_rate",
                float(rate),
            )
        )
    breaker = options.get("slo_breaker_p99_ms")
    if breaker == "auto":
        breaker = BREAKER_SLO_AUTO_MS if options.get("shape") == "outage" else None
    if breaker is not None:
        found.append(
            Threshold(
                "breaker_rejection_p99_ms",
                f"p99 of {names.IMPORT_BREAKER_OPEN}",
                "--slo-breaker-p99-ms",
                "percentile",
                float(breaker),
                (names.IMPORT_BREAKER_OPEN,),
                0.99,
            )
        )
    public = options.get("slo_public_p95_ms")
    if public is not None:
        found.append(
            Threshold(
                "public_p95_ms",
                "p95 of the slowest public read (list, search, detail)",
                "--slo-public-p95-ms",
                "worst_percentile",
                float(public),
                names.PUBLIC_READS,
                0.95,
            )
        )
    ratio = options.get("slo_breaker_health_ratio")
    if ratio is not None:
        found.append(
            Threshold(
                "breaker_to_health_p99_ratio",
                f"p99 {names.IMPORT_BREAKER_OPEN} / p99 GET {names.HEALTH}",
                "--slo-breaker-health-ratio",
                "ratio",
                float(ratio),
                (names.IMPORT_BREAKER_OPEN,),
                0.99,
                (names.HEALTH,),
            )
        )
    return found


def _no_requests(entries: Sequence[str]) -> str:
    quoted = " or ".join(repr(name) for name in entries)
    return f"no requests named {quoted} were made, so the target cannot be checked"


def evaluate(threshold: Threshold, snapshot: Snapshot) -> Verdict:
    """Check one threshold against the statistics in `snapshot`."""
    if threshold.kind == "error_rate":
        total = figures(snapshot, names=threshold.entries or None)
        if total.error_rate is None:
            return Verdict(threshold, None, False, "no requests were made at all")
        return _verdict(threshold, total.error_rate)
    if threshold.kind == "worst_percentile":
        return _worst(threshold, snapshot)
    measured = figures(snapshot, names=threshold.entries).percentile(threshold.percent)
    if measured is None:
        return Verdict(threshold, None, False, _no_requests(threshold.entries))
    if threshold.kind == "percentile":
        return _verdict(threshold, float(measured))
    below = figures(snapshot, names=threshold.over).percentile(threshold.percent)
    if below is None:
        return Verdict(threshold, None, False, _no_requests(threshold.over))
    # Locust rounds to whole ms: a 0 ms p99 would divide by zero, so count it as 1 ms.
    return _verdict(threshold, round(measured / max(below, 1), 3))


def _worst(threshold: Threshold, snapshot: Snapshot) -> Verdict:
    each = {
        name: figures(snapshot, names=(name,)).percentile(threshold.percent)
        for name in threshold.entries
    }
    missing = [name for name, value in each.items() if value is None]
    if missing:
        return Verdict(threshold, None, False, _no_requests(missing))
    slowest = max(each, key=lambda name: float(each[name] or 0))
    verdict = _verdict(threshold, float(each[slowest] or 0))
    if verdict.passed:
        return verdict
    return Verdict(threshold, verdict.measured, False, f"{verdict.message} (slowest: {slowest})")


def _verdict(threshold: Threshold, measured: float) -> Verdict:
    passed = measured < threshold.target
    message = (
        ""
        if passed
        else (
            f"{threshold.label}: measured {_show(threshold, measured)}, "
            f"target < {_show(threshold, threshold.target)}"
        )
    )
    return Verdict(threshold, measured, passed, message)


def evaluate_all(thresholds: Sequence[Threshold], snapshot: Snapshot) -> list[Verdict]:
    """Check every threshold."""
    return [evaluate(threshold, snapshot) for threshold in thresholds]


def format_value(kind: Kind, value: float) -> str:
    """A measurement or target of a threshold of `kind` as people read it: %, x or ms."""
    if kind == "error_rate":
        return f"{value * 100:.3g} %"
    if kind == "ratio":
        return f"{value:.3g}x"
    return f"{value:g} ms"


def _show(threshold: Threshold, value: float) -> str:
    return format_value(threshold.kind, value)


def format_table(verdicts: Sequence[Verdict]) -> str:
    """A plain-text table: threshold, target, measured, result; then one line per breach."""
    rows = [("threshold", "target", "measured", "result")]
    for verdict in verdicts:
        threshold = verdict.threshold
        measured = "no data" if verdict.measured is None else _show(threshold, verdict.measured)
        rows.append(
            (
                threshold.label,
                f"< {_show(threshold, threshold.target)}",
                measured,
                "pass" if verdict.passed else "FAIL",
            )
        )
    if len(rows) == 1:
        return "thresholds: none configured"
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    breaches = [verdict for verdict in verdicts if not verdict.passed]
    lines.append("")
    if breaches:
        lines.append(f"{len(breaches)} threshold(s) breached:")
        lines.extend(
            f"  BREACH {v.threshold.name} ({v.threshold.option}): {v.message}" for v in breaches
        )
    else:
        lines.append(f"all {len(verdicts)} threshold(s) held")
    return "\n".join(lines)
