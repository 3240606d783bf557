"""Locust's `*_stats_history.csv` as time series per statistics entry, for the report's figures.

With `--csv-full-history` Locust appends, about once a second, one row per entry and one
`Aggregated` row: the user count, the entry's running totals (`Total Request Count`,
`Total Failure Count`) and its response-time percentiles over roughly the last 10 seconds.
Requests and failures per second are taken from the differences of the totals between rows, so
they are exact per interval (Locust's own `Requests/s` column is a 10 s average). Read with the
standard `csv` module: the load extra has no pandas.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

AGGREGATED = "Aggregated"
PERCENTILE_COLUMNS = {"p50": "50%", "p95": "95%", "p99": "99%"}
_REQUIRED = ("Timestamp", "User Count", "Type", "Name", "Total Request Count",
             "Total Failure Count", *PERCENTILE_COLUMNS.values(), "100%")  # fmt: skip


class HistoryError(ValueError):
    """The file is not a Locust statistics history."""


@dataclass
class Series:
    """One entry over time; `seconds` from the run's start, one value per history row.

    `requests_per_s` and `failures_per_s` cover the interval ending at each time; a
    percentile is None where Locust had nothing to report for its window.
    """

    method: str
    name: str
    seconds: list[float] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)
    """The length of the interval that ends at each time (about 1 s)."""
    users: list[int] = field(default_factory=list)
    requests_per_s: list[float] = field(default_factory=list)
    failures_per_s: list[float] = field(default_factory=list)
    percentiles: dict[str, list[float | None]] = field(
        default_factory=lambda: {key: [] for key in PERCENTILE_COLUMNS}
    )
    requests: int = 0
    failures: int = 0

    def edges(self) -> list[float]:
        """The intervals' bounds: the start of the first, then every row's time."""
        return [self.seconds[0] - self.spans[0], *self.seconds] if self.seconds else []


@dataclass
class History:
    """Every entry's series (the `Aggregated` row under its own name) and the run's t=0."""

    start: float
    entries: dict[tuple[str, str], Series]

    @property
    def total(self) -> Series | None:
        """All requests together (Locust's `Aggregated` rows)."""
        return self.entries.get(("", AGGREGATED))

    def endpoints(self) -> list[Series]:
        """Every entry but the aggregate, in Locust's order (by name, then method)."""
        return [series for key, series in sorted(self.entries.items()) if key[1] != AGGREGATED]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # Locust writes N/A before an entry has requests


def read_history(path: Path, start: float | None = None) -> History:
    """Parse `path`; times count from `start` (epoch seconds), else from its first row."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HistoryError(f"{path}: cannot read it: {exc}") from None
    if not rows:
        raise HistoryError(f"{path}: no rows (expected Locust's statistics history)")
    missing = [column for column in _REQUIRED if column not in rows[0]]
    if missing:
        raise HistoryError(f"{path}: not a Locust statistics history (no {', '.join(missing)})")
    return _series(rows, path, start)


def _series(rows: Iterable[dict[str, str]], path: Path, start: float | None) -> History:
    entries: dict[tuple[str, str], Series] = {}
    previous: dict[tuple[str, str], tuple[float, int, int]] = {}
    origin = start
    for line, row in enumerate(rows, start=2):
        try:
            stamp = float(row["Timestamp"])
            users = int(row["User Count"])
            total = int(row["Total Request Count"])
            failed = int(row["Total Failure Count"])
        except (TypeError, ValueError):
            raise HistoryError(f"{path}, line {line}: not a number where one belongs") from None
        if origin is None:
            origin = stamp
        key = (row["Type"] or "", row["Name"] or "")
        series = entries.setdefault(key, Series(*key))
        # an entry's first row counts from zero: it did not exist at the row before
        then, before, failed_before = previous.get(key, (stamp - 1, 0, 0))
        if stamp <= then:
            continue  # a second row in the same second: the next row's difference has it
        span = stamp - then
        previous[key] = (stamp, total, failed)
        series.seconds.append(stamp - origin)
        series.spans.append(span)
        series.users.append(users)
        series.requests_per_s.append(max(total - before, 0) / span)
        series.failures_per_s.append(max(failed - failed_before, 0) / span)
        series.requests, series.failures = total, failed
        # 0 in the 100% column: no request in Locust's window (or no window yet), so the
        # percentiles are not measurements; a window whose requests all took < 0.5 ms is
        # lost with them, which costs a flat line at zero.
        empty = not _number(row["100%"])
        for key_name, column in PERCENTILE_COLUMNS.items():
            series.percentiles[key_name].append(None if empty else _number(row[column]))
    return History(origin or 0.0, entries)
