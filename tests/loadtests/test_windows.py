"""Figures over windows of a run, from snapshots of statistics shaped like Locust's."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from loadtests.windows import Snapshot, figures, percentile, take


@dataclass
class Entry:
    num_requests: int = 0
    num_failures: int = 0
    response_times: dict[int, int] = field(default_factory=dict)

    def log(self, ms: int, *, failed: bool = False) -> None:
        self.num_requests += 1
        self.num_failures += failed
        self.response_times[ms] = self.response_times.get(ms, 0) + 1


@dataclass
class Stats:
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)

    def entry(self, name: str, method: str = "GET") -> Entry:
        return self.entries.setdefault((name, method), Entry())


def test_percentile_matches_locusts_definition() -> None:
    # What locust.stats.calculate_response_time_percentile answers for 100 requests at
    # 1..100 ms (checked against Locust 2.47; Locust is not imported here: it monkey-patches).
    times = dict.fromkeys(range(1, 101), 1)
    assert [percentile(times, 100, p) for p in (0.5, 0.95, 0.99, 1.0)] == [51, 96, 100, 100]
    assert percentile({5: 3}, 3, 0.99) == 5
    assert percentile({}, 0, 0.99) == 0


def test_percentile_is_locusts_own_function() -> None:
    # Locust is imported in a child process: importing it monkey-patches the test process.
    histograms = [({1: 1, 2: 3, 40: 2, 300: 1}, 7), ({5: 3}, 3), ({}, 0), ({0: 10, 9: 90}, 100)]
    percents = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
    program = (
        "import json, sys\n"
        "from locust.stats import calculate_response_time_percentile as p\n"
        "cases = json.loads(sys.stdin.read())\n"
        "print(json.dumps([[p({int(k): v for k, v in h.items()}, n, q) for q in cases['q']]"
        " for h, n in cases['h']]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps({"h": histograms, "q": percents}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ours = [[percentile(h, n, q) for q in percents] for h, n in histograms]
    assert json.loads(done.stdout) == ours


def test_a_window_is_the_difference_of_two_snapshots() -> None:
    stats = Stats()
    for ms in (1, 2, 3):
        stats.entry("/a").log(ms)
    before = take(stats, 10.0)
    stats.entry("/a").log(500, failed=True)
    stats.entry("/b").log(7)
    after = take(stats, 12.0)

    window = figures(after, before)
    assert (window.requests, window.failures, window.seconds) == (2, 1, 2.0)
    assert window.error_rate == 0.5
    assert window.rps == 1.0
    assert window.percentile(0.99) == 500
    only_a = figures(after, before, names=("/a",))
    assert (only_a.requests, only_a.max_ms) == (1, 500)
    whole = figures(after)
    assert whole.requests == 5


def test_snapshots_are_copies() -> None:
    stats = Stats()
    stats.entry("/a").log(1)
    snap = take(stats, 0.0)
    stats.entry("/a").log(2)
    assert snap.entries[("/a", "GET")].requests == 1
    assert dict(snap.entries[("/a", "GET")].response_times) == {1: 1}


def test_no_requests_gives_no_figures() -> None:
    empty = figures(Snapshot(5.0, {}))
    assert empty.error_rate is None
    assert empty.percentile(0.99) is None
    assert empty.max_ms is None
    assert empty.as_dict()["p99_ms"] is None
    assert figures(Snapshot(0.0, {})).rps is None


@pytest.mark.parametrize("ms", [0, 1, 49])
def test_as_dict_keeps_whole_milliseconds(ms: int) -> None:
    stats = Stats()
    stats.entry("/a").log(ms)
    assert figures(take(stats, 1.0)).as_dict()["p50_ms"] == ms
