"""The Sentry analysis: what `sentry_analysis.ipynb` shows, from `sentry_load.load_sentry`.

Events over time and by tag (`endpoint_type`, `user_type`, `bgg_breaker`, ...), the top
issues, a release comparison (and before/after one release), spikes found by a rolling
z-score with the issue behind each, and the share of events that are about BGG.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from notebooks.reliability.errors import InputError
from notebooks.reliability.timeutil import UTC_DTYPE, as_instant, bucket_seconds

#: What makes an event "BGG-related": its title, message, exception type or fingerprint name
#: BGG (the service's `bgg-unavailable`, `BggTransientError`, `.../xmlapi2/...`). Not the
#: culprit: every import route's path has `{bgg_id}`, whatever failed in it.
BGG_PATTERN = re.compile(r"\bbgg(?!_id)|boardgamegeek|xmlapi", re.IGNORECASE)
NOT_SET = "(not set)"
#: A rate per hour is only given over at least this many seconds of events: from a few
#: seconds it would be an extrapolation (8 events in 2 s are not 14,400 an hour).
MIN_RATE_SPAN_S = 900.0
#: More buckets than this is a mistake (a 1-second bucket over a year), not an analysis.
MAX_BUCKETS = 100_000


def between(events: pd.DataFrame, since: str = "", until: str = "") -> pd.DataFrame:
    """The events in the window `since <= timestamp < until` (ISO-8601; "" = unbounded)."""
    start = as_instant(since, name="since")
    end = as_instant(until, name="until")
    keep = pd.Series(True, index=events.index)
    if start is not None:
        keep &= events["timestamp"] >= pd.Timestamp(start)
    if end is not None:
        keep &= events["timestamp"] < pd.Timestamp(end)
    return events[keep].reset_index(drop=True)


def auto_bucket(events: pd.DataFrame, spec: str | int = "auto") -> int:
    """The bucket width for `events` (`"auto"`: chosen from their span, see
    `timeutil.choose_bucket`)."""
    if events.empty:
        return bucket_seconds(spec, start=None, end=None)
    first = events["timestamp"].min().to_pydatetime()
    last = events["timestamp"].max().to_pydatetime()
    return bucket_seconds(spec, start=first, end=last)


def tag(events: pd.DataFrame, key: str, *, missing: str = NOT_SET) -> pd.Series:
    """The value of tag `key` (or of the column `key`, e.g. `release`) for each event."""
    if key in events.columns and key != "tags":
        values = events[key].astype(object)
        return values.where(values.notna(), missing).astype("str")
    return events["tags"].map(lambda tags: tags.get(key, missing)).astype("str")


def bgg_related(events: pd.DataFrame) -> pd.Series:
    """Whether each event is about BGG (see `BGG_PATTERN`)."""
    if events.empty:
        return pd.Series(dtype=bool)
    fields = ["title", "message", "exception_type", "fingerprint"]
    text = events[fields].astype(object).fillna("").astype(str).agg(" ".join, axis=1)
    return text.str.contains(BGG_PATTERN).astype(bool)


def _check_buckets(events: pd.DataFrame, bucket: int) -> None:
    if bucket < 1:
        raise InputError(f"bucket must be at least 1 second, got {bucket}")
    if events.empty:
        return
    span = (events["timestamp"].max() - events["timestamp"].min()).total_seconds()
    if span / bucket > MAX_BUCKETS:
        raise InputError(
            f"a {bucket}-second bucket over {span / 86400:.1f} days makes more than "
            f"{MAX_BUCKETS:,} buckets: choose a wider bucket (or auto)"
        )


def _floor(events: pd.DataFrame, bucket: int) -> pd.Series:
    floored: pd.Series = events["timestamp"].dt.floor(f"{bucket}s")
    return floored


def events_over_time(events: pd.DataFrame, bucket: int, *, by: str | None = None) -> pd.DataFrame:
    """Events per bucket (`bucket` seconds), optionally split by a tag or column `by`.

    Columns `bucket` (aware UTC), `by`'s name (when given), `events`; only non-empty buckets.
    """
    _check_buckets(events, bucket)
    keys = ["bucket"] + ([by] if by else [])
    if events.empty:
        frame = pd.DataFrame({k: pd.Series(dtype="str") for k in keys})
        frame["bucket"] = pd.Series(dtype=UTC_DTYPE)
        frame["events"] = pd.Series(dtype="int64")
        return frame
    frame = pd.DataFrame({"bucket": _floor(events, bucket)})
    if by:
        frame[by] = tag(events, by)
    counted = frame.groupby(keys, sort=True).size().rename("events").reset_index()
    return counted.astype({"events": "int64"})


def tag_breakdown(events: pd.DataFrame, key: str) -> pd.DataFrame:
    """Events per value of tag `key`: `value`, `events`, `share`, most frequent first."""
    values = tag(events, key)
    counts = values.value_counts(sort=True)
    frame = pd.DataFrame({"value": counts.index.astype(str), "events": counts.to_numpy()})
    total = int(frame["events"].sum())
    frame["share"] = frame["events"] / total if total else 0.0
    return frame.astype({"events": "int64", "share": "float64"})


def _issue_titles(events: pd.DataFrame) -> pd.Series:
    """Each issue's most frequent title (ties: the latest one)."""
    titles = events[["issue", "title"]].astype(object).fillna("")
    counts = titles.groupby(["issue", "title"], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["issue", "n"], ascending=[True, False], kind="stable")
    return counts.drop_duplicates("issue").set_index("issue")["title"]


def top_issues(events: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """The issues with the most events.

    Columns `issue`, `title`, `events`, `share`, `first_seen`, `last_seen`, `releases`,
    `exception_type`, `culprit`, `bgg_related`.
    """
    columns = [
        "issue",
        "title",
        "events",
        "share",
        "first_seen",
        "last_seen",
        "releases",
        "exception_type",
        "culprit",
        "bgg_related",
    ]
    if events.empty:
        frame = pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
        return frame.astype({"events": "int64", "share": "float64", "bgg_related": "bool"})
    data = events.assign(bgg=bgg_related(events), rel=tag(events, "release"))
    grouped = data.groupby("issue", sort=False).agg(
        events=("event_id", "size"),
        first_seen=("timestamp", "min"),
        last_seen=("timestamp", "max"),
        releases=("rel", lambda r: ", ".join(sorted(set(r)))),
        exception_type=("exception_type", "last"),
        culprit=("culprit", "last"),
        bgg_related=("bgg", "any"),
    )
    grouped["title"] = _issue_titles(events)
    grouped["share"] = grouped["events"] / len(events)
    grouped = grouped.reset_index().sort_values(
        ["events", "last_seen"], ascending=[False, False], kind="stable"
    )
    return grouped[columns].head(limit).reset_index(drop=True)


def release_comparison(events: pd.DataFrame) -> pd.DataFrame:
    """Per release, in order of first appearance: `release`, `events`, `issues`,
    `new_issues` (first seen in this release), `first_seen`, `last_seen`, `span_s` (first
    to last event), `events_per_hour` (NaN over less than `MIN_RATE_SPAN_S`), `top_issue`."""
    columns = [
        "release",
        "events",
        "issues",
        "new_issues",
        "first_seen",
        "last_seen",
        "span_s",
        "events_per_hour",
        "top_issue",
    ]
    if events.empty:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    data = events.assign(rel=tag(events, "release"))
    first_release = data.sort_values("timestamp", kind="stable").drop_duplicates("issue")
    new_counts = first_release.groupby("rel").size()
    titles = _issue_titles(events)
    rows = []
    for release, part in data.groupby("rel", sort=False):
        span = (part["timestamp"].max() - part["timestamp"].min()).total_seconds()
        top = part["issue"].value_counts().index[0]
        rows.append(
            {
                "release": str(release),
                "events": len(part),
                "issues": part["issue"].nunique(),
                "new_issues": int(new_counts.get(release, 0)),
                "first_seen": part["timestamp"].min(),
                "last_seen": part["timestamp"].max(),
                "span_s": span,
                "events_per_hour": events_per_hour(len(part), span),
                "top_issue": titles.get(top, top),
            }
        )
    frame = pd.DataFrame(rows, columns=columns).sort_values("first_seen", kind="stable")
    return frame.reset_index(drop=True)


def before_after(events: pd.DataFrame, release: str) -> pd.DataFrame:
    """Events before and after the first event of `release` (e.g. a `GIT_COMMIT_SHA`).

    Rows `before` and `after`; columns `period`, `events`, `span_s`, `events_per_hour`,
    `issues`, `new_issues` (issues not seen before), `top_issue`. `InputError` when no event
    carries that release.
    """
    releases = tag(events, "release")
    if not (releases == release).any():
        known = ", ".join(sorted(set(releases))[:5]) or "none"
        raise InputError(f"no event has release {release!r} (releases seen: {known})")
    cut = events.loc[releases == release, "timestamp"].min()
    titles = _issue_titles(events)
    seen_before = set(events.loc[events["timestamp"] < cut, "issue"])
    rows = []
    for period, part in (
        ("before", events[events["timestamp"] < cut]),
        ("after", events[events["timestamp"] >= cut]),
    ):
        span = (
            (part["timestamp"].max() - part["timestamp"].min()).total_seconds() if len(part) else 0
        )
        issues = set(part["issue"])
        top = part["issue"].value_counts().index[0] if len(part) else None
        rows.append(
            {
                "period": period,
                "events": len(part),
                "span_s": span,
                "events_per_hour": events_per_hour(len(part), span),
                "issues": len(issues),
                "new_issues": len(issues - seen_before) if period == "after" else len(issues),
                "top_issue": None if top is None else titles.get(top, top),
            }
        )
    return pd.DataFrame(rows)


def events_per_hour(events: int, span_s: float) -> float:
    """`events` over `span_s` seconds as a rate per hour; NaN when the span is shorter than
    `MIN_RATE_SPAN_S` (too little time to say what an hour would hold)."""
    if span_s < MIN_RATE_SPAN_S:
        return math.nan
    return events / (span_s / 3600.0)


def spikes(
    events: pd.DataFrame,
    bucket: int,
    *,
    window: int = 12,
    threshold: float = 3.0,
    min_events: int = 3,
) -> pd.DataFrame:
    """Buckets with unusually many events, by a rolling z-score against the `window` buckets
    before each one (empty buckets count as 0).

    z = (events - mean) / max(std, sqrt(mean), 1): the floor keeps one event in a quiet series
    from scoring infinity. A spike has z >= `threshold` and at least `min_events` events; it
    needs 3 earlier buckets. Columns `bucket`, `events`, `baseline`, `zscore`, `spike`,
    `top_issue`, `top_issue_events` (the last two for spikes only).
    """
    _check_buckets(events, bucket)
    columns = ["bucket", "events", "baseline", "zscore", "spike", "top_issue", "top_issue_events"]
    if events.empty:
        frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        frame["bucket"] = pd.Series(dtype=UTC_DTYPE)
        return frame.astype({"spike": "bool", "top_issue": "str", "top_issue_events": "Int64"})
    floored = _floor(events, bucket)
    counts = floored.value_counts().sort_index()
    grid = pd.date_range(counts.index.min(), counts.index.max(), freq=f"{bucket}s")
    series = counts.reindex(grid, fill_value=0).astype("float64")
    previous = series.shift(1).rolling(window, min_periods=min(3, window))
    mean = previous.mean()
    std = previous.std(ddof=0)
    floor = np.maximum(np.sqrt(mean.clip(lower=0).fillna(0)), 1.0)
    scale = np.maximum(std.fillna(0), floor)
    z = (series - mean) / scale
    frame = pd.DataFrame(
        {
            "bucket": grid,
            "events": series.astype("int64").to_numpy(),
            "baseline": mean.to_numpy(),
            "zscore": z.to_numpy(),
        }
    )
    frame["spike"] = (frame["zscore"] >= threshold) & (frame["events"] >= min_events)
    titles = _issue_titles(events)
    tops: list[str | None] = []
    top_counts: list[int | None] = []
    for is_spike, start in zip(frame["spike"], frame["bucket"], strict=True):
        if not is_spike:
            tops.append(None)
            top_counts.append(None)
            continue
        inside = events.loc[floored == start, "issue"].value_counts()
        tops.append(str(titles.get(inside.index[0], inside.index[0])))
        top_counts.append(int(inside.iloc[0]))
    frame["top_issue"] = pd.Series(tops, dtype="str")
    frame["top_issue_events"] = pd.Series(top_counts, dtype="Int64")
    frame["bucket"] = frame["bucket"].astype(UTC_DTYPE)
    return frame[columns]


def bgg_share(events: pd.DataFrame) -> pd.DataFrame:
    """How many events are BGG-related: rows `BGG-related`, `other`; `events`, `share`."""
    related = bgg_related(events)
    total = len(events)
    n = int(related.sum())
    return pd.DataFrame(
        {
            "category": ["BGG-related", "other"],
            "events": [n, total - n],
            "share": [n / total if total else math.nan, (total - n) / total if total else math.nan],
        }
    )


def sentry_overview(events: pd.DataFrame) -> pd.DataFrame:
    """Headline figures: events, issues, releases, environments, first and last event, the
    shapes the events came in."""

    def fmt(value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        if isinstance(value, pd.Timestamp):
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return str(value)

    first = events["timestamp"].min() if len(events) else None
    last = events["timestamp"].max() if len(events) else None
    return pd.DataFrame(
        {
            "measure": [
                "events",
                "issues",
                "releases",
                "environments",
                "first event",
                "last event",
                "shapes",
            ],
            "value": [
                f"{len(events):,}",
                f"{events['issue'].nunique():,}",
                ", ".join(sorted(set(tag(events, "release")))) or "n/a",
                ", ".join(sorted(set(tag(events, "environment")))) or "n/a",
                fmt(first),
                fmt(last),
                ", ".join(sorted(set(events["shape"].astype(str)))) or "n/a",
            ],
        }
    )


def bgg_over_time(events: pd.DataFrame, bucket: int) -> pd.DataFrame:
    """Events per bucket split into `BGG-related` and `other` (column `category`)."""
    labelled = events.assign(
        category=bgg_related(events).map({True: "BGG-related", False: "other"})
    )
    return events_over_time(labelled, bucket, by="category")


def latest_release(events: pd.DataFrame) -> str | None:
    """The release of the newest event that has one."""
    releases = tag(events, "release")
    known = events.loc[releases != NOT_SET]
    if known.empty:
        return None
    return str(tag(known, "release").iloc[known["timestamp"].argmax()])
