"""The Sentry analysis: over time, by tag, top issues, releases, spikes, BGG share."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notebooks.reliability import sentry
from notebooks.reliability.errors import InputError
from notebooks.reliability.sentry_load import empty_events, events_frame, load_sentry
from tests.notebooks.support import FIXTURES

T0 = pd.Timestamp("2026-11-30 10:00:00", tz="UTC")


def event(
    i: int,
    second: float,
    *,
    title: str = "BggTransientError: BGG answered 503",
    release: str = "r1",
    issue: str | None = None,
    **tags: str,
) -> dict[str, Any]:
    exc = title.split(":")[0]
    return {
        "event_id": f"e{i}",
        "timestamp": T0 + pd.Timedelta(seconds=second),
        "title": title,
        "message": None,
        "culprit": "/api/admin/games/import/{bgg_id}",
        "level": "error",
        "release": release,
        "environment": "test",
        "issue": issue or f"title:{exc}",
        "fingerprint": None,
        "exception_type": exc,
        "platform": "python",
        "tags": tags,
        "shape": "export_jsonl",
        "source": "t",
        "_where": f"event {i}",
    }


def test_over_time_and_by_tag() -> None:
    events = events_frame(
        [
            event(1, 0, user_type="admin"),
            event(2, 30, user_type="public"),
            event(3, 61),
        ]
    )
    counted = sentry.events_over_time(events, 60, by="user_type")
    assert counted.to_dict("records") == [
        {"bucket": T0, "user_type": "admin", "events": 1},
        {"bucket": T0, "user_type": "public", "events": 1},
        {"bucket": T0 + pd.Timedelta(minutes=1), "user_type": "(not set)", "events": 1},
    ]
    breakdown = sentry.tag_breakdown(events, "user_type")
    assert breakdown["events"].sum() == 3
    assert sentry.events_over_time(empty_events(), 60, by="user_type").empty


def test_too_many_buckets_is_an_input_error() -> None:
    events = events_frame([event(1, 0), event(2, 400 * 86400)])
    with pytest.raises(InputError, match="choose a wider bucket"):
        sentry.events_over_time(events, 1)


def test_top_issues_and_titles() -> None:
    events = events_frame(
        [
            event(1, 0, title="A: x 1", issue="i1"),
            event(2, 1, title="A: x 1", issue="i1"),
            event(3, 2, title="B: y", issue="i2"),
        ]
    )
    top = sentry.top_issues(events)
    assert top[["issue", "title", "events"]].values.tolist() == [
        ["i1", "A: x 1", 2],
        ["i2", "B: y", 1],
    ]
    assert top["share"].sum() == pytest.approx(1.0)
    assert sentry.top_issues(empty_events()).empty


def test_release_comparison_and_before_after() -> None:
    events = events_frame(
        [
            event(1, 0, release="old", issue="a"),
            event(2, 10, release="old", issue="a"),
            event(3, 20, release="new", issue="a"),
            event(4, 30, release="new", issue="b"),
            event(5, 40, release="new", issue="b"),
        ]
    )
    table = sentry.release_comparison(events)
    assert table[["release", "events", "issues", "new_issues"]].values.tolist() == [
        ["old", 2, 1, 1],
        ["new", 3, 2, 1],
    ]
    split = sentry.before_after(events, "new")
    assert split[["period", "events", "issues", "new_issues"]].values.tolist() == [
        ["before", 2, 1, 1],
        ["after", 3, 2, 1],
    ]
    assert sentry.latest_release(events) == "new"
    with pytest.raises(InputError, match="no event has release 'nope'"):
        sentry.before_after(events, "nope")


def test_a_spike_is_found_and_named() -> None:
    quiet = [event(i, i * 60, title="Noise: n", issue="noise") for i in range(12)]
    burst = [
        event(100 + i, 12 * 60 + i, title="BggBadResponse: html", issue="bad") for i in range(6)
    ]
    found = sentry.spikes(events_frame(quiet + burst), 60)
    hits = found[found["spike"]]
    assert len(hits) == 1
    assert hits.iloc[0]["top_issue"] == "BggBadResponse: html"
    assert hits.iloc[0]["top_issue_events"] == 6
    assert int(found["events"].sum()) == 18


def test_one_event_in_a_quiet_series_is_no_spike() -> None:
    events = events_frame([event(1, 0), event(2, 3600)])
    assert not sentry.spikes(events, 60)["spike"].any()
    assert sentry.spikes(empty_events(), 60).empty


@settings(max_examples=40, deadline=None)
@given(
    seconds=st.lists(st.integers(0, 3 * 3600), min_size=1, max_size=40),
    bucket=st.sampled_from([60, 300, 900]),
)
def test_spikes_count_every_event_once(seconds: list[int], bucket: int) -> None:
    events = events_frame([event(i, s) for i, s in enumerate(seconds)])
    found = sentry.spikes(events, bucket)
    assert int(found["events"].sum()) == len(seconds)
    assert found["bucket"].is_monotonic_increasing
    assert (found.loc[found["spike"], "events"] >= 3).all()


def test_bgg_share_and_between() -> None:
    events = events_frame(
        [
            event(1, 0),
            event(2, 10, title="KeyError: 'x'", issue="k"),
            event(3, 20, title="BggUnavailable: open"),
        ]
    )
    share = sentry.bgg_share(events)
    assert share["events"].tolist() == [2, 1]
    assert len(sentry.between(events, "2026-11-30T10:00:05Z", "2026-11-30T10:00:15Z")) == 1
    assert share["share"].sum() == pytest.approx(1.0)


def test_on_the_real_fixtures() -> None:
    events = load_sentry(FIXTURES / "sentry")
    width = sentry.auto_bucket(events)
    assert sentry.events_over_time(events, width)["events"].sum() == 2
    top = sentry.top_issues(events)
    assert set(top["exception_type"]) == {"ZeroDivisionError", "NoReverseMatch"}
    assert not sentry.bgg_related(events).any()
    assert sentry.tag_breakdown(events, "browser.name")["value"].tolist() == ["Firefox"]
    overview = dict(sentry.sentry_overview(events).values.tolist())
    assert overview["events"] == "2"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", overview["first event"])
