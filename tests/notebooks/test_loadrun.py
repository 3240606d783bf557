"""A load run's reports: Locust's CSVs (as Locust 2.47 writes them) and the harness summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from notebooks.reliability.errors import InputError
from notebooks.reliability.loadrun import (
    figures,
    load_failures,
    load_history,
    load_run,
    load_stats,
    load_summary,
)

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


# -- each file on its own -----------------------------------------------------------------------


def test_load_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY), "utf-8")
    summary = load_summary(path)
    assert summary == SUMMARY
    assert load_summary(str(path))["error_rate"] == 0.001703


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file (expected summary.json of a load run"),
        ("", "is not a load summary: expected summary.json of a load run"),
        ("{oops", "is not JSON (Expecting property name"),
        ("[1, 2]", "is not a load summary: expected"),
        ('{"error_rate": 0.1, "rps": 3}', "it has no breaker_rejection_p99_ms, health_p99_ms,"),
    ],
)
def test_load_summary_refuses(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "summary.json"
    if text is not None:
        path.write_text(text, "utf-8")
    with pytest.raises(InputError) as caught:
        load_summary(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_load_stats(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS, "utf-8")
    stats = load_stats(path)
    assert stats["Name"].tolist() == [
        "/api/admin/games/import/{bgg_id}",
        "/health",
        "import (breaker open)",
        "Aggregated",
    ]
    assert stats["Request Count"].tolist() == [360, 242, 284, 2935]
    assert stats.loc[stats["Name"] == "/health", "99%"].item() == 16
    assert pd.isna(stats.loc[stats["Name"] == "Aggregated", "Type"].item())


def test_load_history(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats_history.csv"
    path.write_text(HISTORY, "utf-8")
    history = load_history(path)
    assert history["time"].tolist() == [
        pd.Timestamp(1796011600, unit="s", tz="UTC"),
        pd.Timestamp(1796011601, unit="s", tz="UTC"),
    ]
    assert str(history["time"].dtype) == "datetime64[us, UTC]"
    # Locust writes N/A before the first request: NaN, so the column stays numeric.
    assert history["99%"].isna().tolist() == [True, False]
    assert history["99%"].iloc[1] == 100
    assert history["User Count"].tolist() == [0, 10]


def test_load_failures(tmp_path: Path) -> None:
    path = tmp_path / "locust_failures.csv"
    path.write_text(FAILURES, "utf-8")
    failures = load_failures(path)
    assert failures[["Method", "Occurrences"]].values.tolist() == [["POST", 5]]
    assert failures["Error"].item() == "CatchResponseError('HTTP 502 bgg_transient_error')"
    empty = tmp_path / "none_failures.csv"
    empty.write_text("Method,Name,Error,Occurrences\n", "utf-8")
    assert load_failures(empty).empty


@pytest.mark.parametrize(
    ("loader", "text", "message"),
    [
        (load_stats, "", "is empty: expected a Locust CSV with a header row"),
        (load_stats, "Type,Name\nGET,/health\n", "no Request Count, Failure Count column(s)"),
        (load_history, "Timestamp,Name\n1,x\n", "no User Count, Requests/s column(s)"),
        (load_failures, "Method,Name,Error\nGET,/x,boom\n", "no Occurrences column(s)"),
        (load_failures, 'Method,Name,Error,Occurrences\n"GET,/x\n', "is not readable as CSV"),
    ],
)
def test_broken_locust_csvs(
    tmp_path: Path, loader: Callable[[Path], pd.DataFrame], text: str, message: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text, "utf-8")
    with pytest.raises(InputError) as caught:
        loader(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
