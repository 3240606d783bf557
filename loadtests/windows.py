"""Figures over a window of a run, from snapshots of Locust's request statistics.

A `Snapshot` copies, for every statistics entry, its request and failure counts and its
response-time histogram (Locust keeps a `{rounded ms: count}` dict per entry). The figures of
a window (a phase of the outage shape, a step of the ramp, the whole run) are the difference
of two snapshots, so they are exact for the window rather than Locust's rolling 10 s view.
Percentiles are computed the way Locust computes them, so whole-run figures match its CSVs.

No Locust import here: a snapshot is taken from anything shaped like `RequestStats`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class _Entry(Protocol):
    num_requests: int
    num_failures: int
    response_times: dict[int, int]


class StatsLike(Protocol):
    """What is read from Locust's `RequestStats`."""

    @property
    def entries(self) -> Mapping[tuple[str, str], _Entry]: ...


@dataclass(frozen=True, slots=True)
class Counts:
    """One entry's totals at one moment."""

    requests: int
    failures: int
    response_times: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every entry's totals at `at` (seconds on any clock, the same for all snapshots)."""

    at: float
    entries: Mapping[tuple[str, str], Counts]


EMPTY = Snapshot(0.0, {})


def take(stats: StatsLike, at: float) -> Snapshot:
    """Copy the counts and histograms of every entry of `stats`."""
    return Snapshot(
        at,
        {
            key: Counts(entry.num_requests, entry.num_failures, dict(entry.response_times))
            for key, entry in list(stats.entries.items())
        },
    )


def percentile(response_times: Mapping[int, int], requests: int, percent: float) -> int:
    """Locust's percentile: the smallest bucket with at most `(1-percent)` of requests above.

    A copy of `locust.stats.calculate_response_time_percentile` rather than an import: importing
    any `locust` module runs gevent's `monkey.patch_all()`, and this module is also imported
    by the load runner's parent process (`loadtests.cli`) and the report, which must stay
    unpatched. `tests/loadtests/test_windows.py` checks the copy against Locust's function.
    """
    allowed_above = int(requests * percent)
    seen = 0
    for value in sorted(response_times, reverse=True):
        seen += response_times[value]
        if requests - seen <= allowed_above:
            return value
    return 0


@dataclass(frozen=True, slots=True)
class Figures:
    """Requests, failures, rate and latency of some entries over a window."""

    requests: int
    failures: int
    seconds: float
    response_times: Mapping[int, int]

    @property
    def error_rate(self) -> float | None:
        """Failures / requests; None without requests."""
        return self.failures / self.requests if self.requests else None

    @property
    def rps(self) -> float | None:
        """Requests per second over the window; None for a window of no length."""
        return self.requests / self.seconds if self.seconds > 0 else None

    def percentile(self, percent: float) -> int | None:
        """The `percent` (0..1) percentile in ms; None without requests."""
        if not self.requests:
            return None
        return percentile(self.response_times, self.requests, percent)

    @property
    def max_ms(self) -> int | None:
        """The slowest request (rounded as Locust rounds); None without requests."""
        return max(self.response_times) if self.response_times else None

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready data (ms, fractions, requests per second)."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": _round(self.error_rate, 6),
            "rps": _round(self.rps, 2),
            "p50_ms": self.percentile(0.50),
            "p95_ms": self.percentile(0.95),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.max_ms,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def figures(
    after: Snapshot, before: Snapshot = EMPTY, names: Collection[str] | None = None
) -> Figures:
    """The figures of the entries called `names` (None: all) between two snapshots."""
    requests = failures = 0
    histogram: dict[int, int] = {}
    for key, now in after.entries.items():
        if names is not None and key[0] not in names:
            continue
        then = before.entries.get(key)
        requests += now.requests - (then.requests if then else 0)
        failures += now.failures - (then.failures if then else 0)
        for value, count in now.response_times.items():
            delta = count - (then.response_times.get(value, 0) if then else 0)
            if delta > 0:
                histogram[value] = histogram.get(value, 0) + delta
    return Figures(requests, failures, max(0.0, after.at - before.at), histogram)


def entry_names(snapshots: Iterable[Snapshot]) -> list[tuple[str, str]]:
    """Every (name, method) seen in any snapshot, sorted."""
    keys: set[tuple[str, str]] = set()
    for snapshot in snapshots:
        keys.update(snapshot.entries)
    return sorted(keys)
