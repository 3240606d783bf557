"""A Locust load run's reports: the CSVs Locust writes and the summary `python -m loadtests` adds.

`reports/load/` (or any `--csv PREFIX` folder) holds `PREFIX_stats.csv` (one row per request
name and an `Aggregated` row), `PREFIX_stats_history.csv` (every few seconds: users, rps,
percentiles), `PREFIX_failures.csv`, and the harness's `summary.json` with at least
`error_rate`, `breaker_rejection_p99_ms`, `health_p99_ms`, `breaker_to_health_p99_ratio`,
`requests`, `rps` and `thresholds` (see docs/load.md). Any part may be missing: `load_run`
returns what there is, and `None` for a folder without a load run, so a notebook can say "not
available: run nox -s load".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from notebooks.reliability.errors import InputError
from notebooks.reliability.timeutil import UTC_DTYPE

SUMMARY_KEYS = (
    "error_rate",
    "breaker_rejection_p99_ms",
    "health_p99_ms",
    "breaker_to_health_p99_ratio",
    "requests",
    "rps",
    "thresholds",
)
STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count")


@dataclass
class LoadRun:
    """What a load-run folder holds (each part None when absent)."""

    folder: Path
    summary: dict[str, Any] | None = None
    stats: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def thresholds(self) -> pd.DataFrame:
        """The summary's thresholds: `name`, `label`, `target`, `measured`, `passed`."""
        rows = (self.summary or {}).get("thresholds") or []
        frame = pd.DataFrame(rows)
        for column in ("name", "label", "target", "measured", "passed"):
            if column not in frame.columns:
                frame[column] = None
        return frame[["name", "label", "target", "measured", "passed"]]

    def phases(self) -> pd.DataFrame:
        """The summary's phases (outage shape): `name`, `start_s`, `end_s`, `bgg`,
        `breaker_at_end` (empty when the run had none)."""
        rows = (self.summary or {}).get("phases") or []
        return pd.DataFrame(
            [
                {k: p.get(k) for k in ("name", "start_s", "end_s", "bgg", "breaker_at_end")}
                for p in rows
            ],
            columns=["name", "start_s", "end_s", "bgg", "breaker_at_end"],
        )


def _csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, na_values=["N/A"], keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty: expected a Locust CSV with a header row") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path} is not readable as CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path} is not a Locust CSV: no {', '.join(missing)} column(s) "
            f"(expected {', '.join(required)})"
        )
    return frame


def load_summary(path: str | Path) -> dict[str, Any]:
    """`summary.json` of a load run, checked for the keys the report needs."""
    path = Path(path)
    what = "summary.json of a load run (error_rate, breaker_rejection_p99_ms, thresholds, ...)"
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected {what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON ({exc.msg}): expected {what}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"{path} is not a load summary: expected {what}")
    missing = [k for k in SUMMARY_KEYS if k not in data]
    if missing:
        raise InputError(
            f"{path} is not a load summary: it has no {', '.join(missing)}; expected {what}"
        )
    return dict(data)


def load_stats(path: str | Path) -> pd.DataFrame:
    """`*_stats.csv`: one row per request name plus `Aggregated` (percentile columns in ms)."""
    return _csv(Path(path), STATS_COLUMNS)


def load_history(path: str | Path) -> pd.DataFrame:
    """`*_stats_history.csv` with `time` (aware UTC) from Locust's epoch `Timestamp`; `N/A`
    percentiles (no request yet) are NaN."""
    frame = _csv(Path(path), ("Timestamp", "User Count", "Name", "Requests/s"))
    frame["time"] = pd.to_datetime(frame["Timestamp"], unit="s", utc=True).astype(UTC_DTYPE)
    return frame


def load_failures(path: str | Path) -> pd.DataFrame:
    """`*_failures.csv`: `Method`, `Name`, `Error`, `Occurrences`."""
    return _csv(Path(path), ("Method", "Name", "Error", "Occurrences"))


def _one(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[0] if found else None


def load_run(folder: str | Path | None) -> LoadRun | None:
    """Everything a load-run folder holds, or None when it holds no load run at all.

    A folder that does not exist is None too (no load run yet); a file in it that is there
    but broken is an `InputError`.
    """
    if folder is None or str(folder) == "":
        return None
    path = Path(folder)
    if not path.is_dir():
        return None
    run = LoadRun(folder=path)
    summary = path / "summary.json"
    if summary.is_file():
        run.summary = load_summary(summary)
    stats = _one(path, "*_stats.csv")
    if stats is not None:
        run.stats = load_stats(stats)
    history = _one(path, "*_stats_history.csv")
    if history is not None:
        run.history = load_history(history)
    failures = _one(path, "*_failures.csv")
    if failures is not None:
        run.failures = load_failures(failures)
    if run.summary is None and run.stats is None:
        return None
    if run.summary is None:
        run.notes.append("no summary.json (plain Locust CSVs): figures computed from the CSVs")
    return run


def figures(run: LoadRun) -> dict[str, float | None]:
    """The run's headline figures: `error_rate`, `requests`, `rps`,
    `breaker_rejection_p99_ms`, `health_p99_ms`, `breaker_to_health_p99_ratio`.

    From `summary.json` when there is one; from `*_stats.csv` otherwise (error rate and rps
    from the `Aggregated` row, p99s from the `import (breaker open)` and `/health` rows).
    """
    keys = (
        "error_rate",
        "requests",
        "rps",
        "breaker_rejection_p99_ms",
        "health_p99_ms",
        "breaker_to_health_p99_ratio",
    )
    if run.summary is not None:
        return {k: _number(run.summary.get(k)) for k in keys}
    out: dict[str, float | None] = dict.fromkeys(keys)
    stats = run.stats
    if stats is None:
        return out
    total = stats[stats["Name"] == "Aggregated"]
    if len(total):
        requests = float(total["Request Count"].iloc[0])
        out["requests"] = requests
        out["error_rate"] = float(total["Failure Count"].iloc[0]) / requests if requests else None
        out["rps"] = _number(total["Requests/s"].iloc[0]) if "Requests/s" in stats else None
    rejection = stats[stats["Name"] == "import (breaker open)"]
    health = stats[(stats["Name"] == "/health") & (stats["Type"] == "GET")]
    if len(rejection) and "99%" in stats:
        out["breaker_rejection_p99_ms"] = _number(rejection["99%"].iloc[0])
    if len(health) and "99%" in stats:
        out["health_p99_ms"] = _number(health["99%"].iloc[0])
    b, h = out["breaker_rejection_p99_ms"], out["health_p99_ms"]
    out["breaker_to_health_p99_ratio"] = b / h if b is not None and h else None
    return out


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if number != number else number
