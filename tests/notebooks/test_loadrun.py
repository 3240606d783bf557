"""A load run's reports: Locust's CSVs (as Locust 2.47 writes them) and the harness summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notebooks.reliability.errors import InputError
from notebooks.reliability.loadrun import figures, load_run

STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,/api/admin/games/import/{bgg_id},360,5,31,44.8,9.2,431.1,906.6,5.96,0.08,31,42,50,57,79,110,180,290,430,430,430
GET,/health,242,0,2,3.1,1.0,48.0,15.0,4.01,0.0,2,2,3,3,6,7,14,16,48,48,48
POST,import (breaker open),284,0,6,7.5,3.7,23.5,162.0,4.70,0.0,6,7,8,10,13,15,20,21,24,24,24
,Aggregated,2935,5,12,18.8,1.0,1017.4,7336.2,48.64,0.08,12,17,21,24,36,51,84,110,430,1000,1000
"""  # noqa: E501
HISTORY = """Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size
1796011600,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0
1796011601,10,,Aggregated,12.0,0.0,14,18,22,24,34,46,77,100,310,310,310,12,0,14,20.5,6.2,310.0,19996.7
"""  # noqa: E501
FAILURES = """Method,Name,Error,Occurrences
POST,/api/admin/games/import/{bgg_id},CatchResponseError('HTTP 502 bgg_transient_error'),5
"""
SUMMARY = {
    "passed": True,
    "requests": 2936,
    "failures": 5,
    "error_rate": 0.001703,
    "rps": 48.5,
    "breaker_rejection_p99_ms": 21,
    "health_p99_ms": 16,
    "breaker_to_health_p99_ratio": 1.312,
    "thresholds": [
        {
            "name": "error_rate",
            "target": 0.01,
            "measured": 0.0017,
            "passed": True,
            "label": "error rate",
            "option": "--slo-error-rate",
            "message": "",
        }
    ],
    "phases": [
        {"name": "outage", "start_s": 18.1, "end_s": 42.2, "bgg": "down", "breaker_at_end": "open"}
    ],
}


def folder(tmp_path: Path, *, summary: bool = True) -> Path:
    (tmp_path / "locust_stats.csv").write_text(STATS, "utf-8")
    (tmp_path / "locust_stats_history.csv").write_text(HISTORY, "utf-8")
    (tmp_path / "locust_failures.csv").write_text(FAILURES, "utf-8")
    if summary:
        (tmp_path / "summary.json").write_text(json.dumps(SUMMARY), "utf-8")
    return tmp_path


def test_a_full_run(tmp_path: Path) -> None:
    run = load_run(folder(tmp_path))
    assert run is not None
    assert figures(run)["breaker_rejection_p99_ms"] == 21
    assert run.thresholds()["passed"].tolist() == [True]
    assert run.phases()["bgg"].tolist() == ["down"]
    assert run.history is not None and run.history["99%"].isna().iloc[0]
    assert str(run.history["time"].dtype) == "datetime64[us, UTC]"
    assert run.failures is not None and int(run.failures["Occurrences"].sum()) == 5


def test_plain_locust_csvs_without_a_summary(tmp_path: Path) -> None:
    run = load_run(folder(tmp_path, summary=False))
    assert run is not None and run.summary is None
    measured = figures(run)
    assert measured["error_rate"] == pytest.approx(5 / 2935)
    assert measured["breaker_rejection_p99_ms"] == 21
    assert measured["health_p99_ms"] == 16
    assert measured["breaker_to_health_p99_ratio"] == pytest.approx(21 / 16)
    assert run.notes


def test_no_run(tmp_path: Path) -> None:
    assert load_run(tmp_path / "missing") is None
    assert load_run(tmp_path) is None
    assert load_run("") is None


def test_broken_files(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"error_rate": 0.1}', "utf-8")
    with pytest.raises(InputError, match="not a load summary: it has no breaker_rejection_p99_ms"):
        load_run(tmp_path)
    (tmp_path / "summary.json").unlink()
    (tmp_path / "x_stats.csv").write_text("a,b\n1,2\n", "utf-8")
    with pytest.raises(InputError, match="not a Locust CSV"):
        load_run(tmp_path)
