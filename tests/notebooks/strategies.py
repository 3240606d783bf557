"""Hypothesis strategies for failure rows, run rows and Sentry events, and a pandas oracle.

Times are drawn at millisecond resolution: SQLite's date functions (`julianday`, `strftime`)
work in milliseconds, so a row within half a millisecond of a bucket edge may land on either
side there (PostgreSQL is exact); the oracle then agrees with both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from notebooks.reliability.errortypes import classify
from notebooks.reliability.sql import DURATION_EDGES

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
START = NOW - timedelta(days=3)
ERROR_TYPES = (
    "ReadTimeout",
    "ConnectError",
    "CdnServerError",
    "CircuitBreakerOpen",
    "ImageNotFound",
    "UnsupportedContentType",
    None,
)
TASK_TYPES = ("thumbnail_download", "bgg_import")

milliseconds = st.integers(0, int((NOW - START).total_seconds() * 1000) + 2 * 3600 * 1000)


@st.composite
def failure_rows(draw: st.DrawFn, *, min_size: int = 0, max_size: int = 25) -> list[dict[str, Any]]:
    """Failure rows as the service writes them (naive UTC), some oddities included: rows from
    the future (after NOW), `resolved` NULL, resolved without a time, everything resolved."""
    count = draw(st.integers(min_size, max_size))
    all_resolved = draw(st.booleans())
    rows = []
    for i in range(1, count + 1):
        created = START + timedelta(milliseconds=draw(milliseconds))
        state = True if all_resolved else draw(st.sampled_from([True, False, None]))
        resolved_at = None
        if state:
            delay = draw(st.one_of(st.integers(0, 20_000), st.integers(0, 10**9)))
            resolved_at = created + timedelta(milliseconds=delay)
            if draw(st.integers(0, 9)) == 0:
                resolved_at = None  # resolved without a time
        game = draw(st.one_of(st.none(), st.integers(1, 5)))
        rows.append(
            {
                "id": i,
                "task_type": draw(st.sampled_from(TASK_TYPES)),
                "game_id": game,
                "error_message": f"failed {draw(st.integers(0, 999))} at https://cdn/pic{i}.jpg",
                "error_type": draw(st.sampled_from(ERROR_TYPES)),
                "stack_trace": None,
                "retry_count": draw(st.integers(0, 5)),
                "url": f"https://cdn/pic{i}.jpg",
                "resolved": state,
                "resolved_at": resolved_at,
                "created_at": created,
            }
        )
    return rows


@st.composite
def run_rows(draw: st.DrawFn, *, min_size: int = 0, max_size: int = 25) -> list[dict[str, Any]]:
    """Task run rows: first runs and retries, successes and failures."""
    count = draw(st.integers(min_size, max_size))
    rows = []
    for i in range(1, count + 1):
        started = START + timedelta(milliseconds=draw(milliseconds))
        outcome = draw(st.sampled_from(["success", "failure"]))
        rows.append(
            {
                "id": i,
                "record_id": f"run-{i}",
                "task_type": "thumbnail_download",
                "game_id": None,
                "failure_id": None,
                "outcome": outcome,
                "attempts": draw(st.integers(1, 3)),
                "trigger": draw(
                    st.sampled_from(["initial", "initial", "auto_retry", "manual_retry"])
                ),
                "error_type": None if outcome == "success" else "ReadTimeout",
                "started_at": started,
                "finished_at": started + timedelta(milliseconds=40),
                "duration_ms": 40.0,
                "job_id": None,
            }
        )
    return rows


def zone_text(value: datetime, zone: int, *, aware: bool) -> str:
    """`value` (naive UTC) as CSV text: naive, or with a `Z`/offset in another zone."""
    if not aware:
        return value.isoformat(sep=" ")
    shifted = value.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=zone)))
    text = shifted.isoformat()
    return text.replace("+00:00", "Z") if zone == 0 else text


# -- the oracle -------------------------------------------------------------------------------


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as pandas, times aware UTC."""
    df = pd.DataFrame(
        rows,
        columns=[
            "id",
            "task_type",
            "game_id",
            "error_type",
            "retry_count",
            "resolved",
            "resolved_at",
            "created_at",
        ],
    )
    for column in ("resolved_at", "created_at"):
        df[column] = pd.to_datetime(df[column], utc=True)
    df["unresolved"] = df["resolved"].map(lambda v: v is not True)
    return df


def expected_bins(seconds: pd.Series) -> list[int]:
    edges = [0, *DURATION_EDGES, float("inf")]
    return [int(((seconds >= a) & (seconds < b)).sum()) for a, b in pairwise(edges)]


def oracle(rows: list[dict[str, Any]], *, bucket: int, now: datetime = NOW) -> dict[str, Any]:
    """What the aggregate queries must return for `rows`."""
    df = frame(rows)
    now_ts = pd.Timestamp(now)
    out: dict[str, Any] = {"failures": len(df), "unresolved": int(df["unresolved"].sum())}
    if df.empty:
        out.update(
            over_time={},
            error_types={},
            retries={},
            backlog={},
            age_bins=expected_bins(pd.Series(dtype=float)),
            resolution_bins=expected_bins(pd.Series(dtype=float)),
            future=0,
            games={},
        )
        return out
    epoch = (df["created_at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    keys = (epoch // bucket * bucket).astype("int64")
    out["over_time"] = df.groupby([keys, df["task_type"]]).size().to_dict()
    out["error_types"] = df["error_type"].fillna("(none)").value_counts().to_dict()
    out["retries"] = df["retry_count"].value_counts().to_dict()
    unresolved = df[df["unresolved"]]
    out["backlog"] = (
        unresolved.groupby([unresolved["task_type"], unresolved["error_type"].fillna("(none)")])
        .size()
        .to_dict()
    )
    ages = (now_ts - unresolved["created_at"]).dt.total_seconds()
    out["age_bins"] = expected_bins(ages[ages >= 0])
    resolved = df[(df["resolved"] == True) & df["resolved_at"].notna()]  # noqa: E712
    durations = (resolved["resolved_at"] - resolved["created_at"]).dt.total_seconds()
    out["resolution_bins"] = expected_bins(durations[durations >= 0])
    out["future"] = int((df["created_at"] > now_ts).sum())
    out["games"] = df["game_id"].value_counts(dropna=False).to_dict()
    out["classes"] = {t: classify(t) for t in df["error_type"].dropna()}
    return out
