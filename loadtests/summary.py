"""`summary.json`: the run's figures and threshold verdicts, for CI, notebooks and people.

Top-level keys (see docs/load.md): `passed`, `error_rate` (fraction), `requests`, `failures`,
`rps`, `breaker_rejection_p99_ms`, `health_p99_ms`, `breaker_to_health_p99_ratio`,
`thresholds` (`[{"name", "target", "measured", "passed", ...}]`), and in more detail `groups`
(all requests, public reads, breaker rejections, /health), `entries` (every statistics row),
`phases` (each phase of the shape, with the BGG state and the breaker state at its end),
`knee` (ramp), `harness_errors`, `shape`, `options`, and timestamps.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import names
from loadtests.knee import Knee, Step
from loadtests.plans import Phase
from loadtests.thresholds import Verdict
from loadtests.windows import Snapshot, entry_names, figures

PHASE_GROUPS = ("all", "public_reads", "imports", "breaker_rejection", "breaker_opening")
GROUPS: Mapping[str, tuple[str, ...] | None] = {
    "all": None,
    "public_reads": names.PUBLIC_READS,
    "breaker_rejection": (names.IMPORT_BREAKER_OPEN,),
    "breaker_opening": (names.IMPORT_BREAKER_OPENING,),
    "all_rejections": names.REJECTIONS,
    "imports": (names.IMPORT,),
    "health": (names.HEALTH,),
}


@dataclass(slots=True)
class PhaseRecord:
    """A phase as it ran: its plan, the snapshot at its start, what was seen at its end."""

    phase: Phase
    started: Snapshot
    breaker_at_end: str | None = None


def iso(epoch: float) -> str:
    """UTC ISO-8601 with a Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def phase_windows(
    records: Sequence[PhaseRecord], final: Snapshot
) -> list[tuple[PhaseRecord, Snapshot, Snapshot]]:
    """Each phase with the snapshots at its start and end (the next start, or `final`)."""
    windows = []
    for i, record in enumerate(records):
        end = records[i + 1].started if i + 1 < len(records) else final
        # the first phase starts before Locust clears its statistics: count from zero
        before = Snapshot(record.started.at, {} if i == 0 else record.started.entries)
        windows.append((record, before, end))
    return windows


def ramp_steps(records: Sequence[PhaseRecord], final: Snapshot) -> list[Step]:
    """The ramp's steps as the knee finder wants them (all requests' rps and p95)."""
    steps = []
    for record, before, end in phase_windows(records, final):
        window = figures(end, before)
        p95 = window.percentile(0.95)
        if window.rps is not None and p95 is not None:
            steps.append(Step(record.phase.users, window.rps, float(p95)))
    return steps


def _phase_dicts(records: Sequence[PhaseRecord], final: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "name": record.phase.name,
            "start_s": round(before.at, 1),
            "end_s": round(end.at, 1),
            "users": record.phase.users,
            "bgg": record.phase.bgg,
            "breaker_at_end": record.breaker_at_end,
            **{key: figures(end, before, GROUPS[key]).as_dict() for key in PHASE_GROUPS},
        }
        for record, before, end in phase_windows(records, final)
    ]


def build(
    final: Snapshot,
    verdicts: Sequence[Verdict],
    *,
    shape: str,
    options: Mapping[str, Any],
    started_at: float,
    finished_at: float,
    phases: Sequence[PhaseRecord] = (),
    knee: Knee | None = None,
    harness_errors: Sequence[str] = (),
) -> dict[str, Any]:
    """The summary of a run whose statistics ended as `final` (`final.at` = run seconds)."""
    start = Snapshot(0.0, {})
    groups = {key: figures(final, start, group).as_dict() for key, group in GROUPS.items()}
    breaker_p99 = groups["breaker_rejection"]["p99_ms"]
    health_p99 = groups["health"]["p99_ms"]
    ratio = None
    if breaker_p99 is not None and health_p99 is not None:
        ratio = round(breaker_p99 / max(health_p99, 1), 3)
    entries = []
    for name, method in entry_names([final]):
        # one name could be used with two methods; keep them apart
        only = Snapshot(final.at, {(name, method): final.entries[(name, method)]})
        row = figures(only, start)
        entries.append({"name": name, "method": method, **row.as_dict()})
    total = groups["all"]
    return {
        "passed": all(v.passed for v in verdicts) and not harness_errors,
        "shape": shape,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "duration_s": round(final.at, 1),
        "requests": total["requests"],
        "failures": total["failures"],
        "error_rate": total["error_rate"],
        "rps": total["rps"],
        "breaker_rejection_p99_ms": breaker_p99,
        "health_p99_ms": health_p99,
        "breaker_to_health_p99_ratio": ratio,
        "thresholds": [verdict.as_dict() for verdict in verdicts],
        "groups": groups,
        "entries": entries,
        "phases": _phase_dicts(phases, final),
        "knee": None
        if knee is None
        else {
            "users": knee.users,
            "rps": round(knee.rps, 2),
            "p95_ms": knee.p95_ms,
            "step_index": knee.index,
            "reason": knee.reason,
        },
        "harness_errors": list(harness_errors),
        "options": dict(options),
    }


def from_iso(text: Any) -> float | None:
    """Epoch seconds of an `iso` timestamp; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def verdict_code(summary: Mapping[str, Any]) -> int:
    """The exit code the summary stands for: 0 every threshold held, 1 a breach, 2 a harness
    error."""
    if summary.get("harness_errors"):
        return 2
    return 0 if summary.get("passed") else 1


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> None:
    """Write `summary` as JSON atomically."""
    write_text(path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
