"""Sentry events from every accepted shape: the real fixtures (events API detail, stored event
JSON), the service's JSON-lines export (made by the service's own converter), the events list,
Discover CSV and JSON; and the errors for what is not a Sentry events export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.sentry_load import (
    EVENT_COLUMNS,
    issue_key,
    load_sentry,
    normalise_event,
    tags_dict,
)
from system.observability.sentry_export import to_api_event
from tests.notebooks.support import FIXTURES

SENTRY = FIXTURES / "sentry"


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("python_zero_division.api_event.json", "api_event"),
        ("python_zero_division.event_json.json", "event_json"),
        ("django_template_error.api_event.json", "api_event"),
        ("django_template_error.event_json.json", "event_json"),
    ],
)
def test_the_real_fixtures(name: str, shape: str) -> None:
    events = load_sentry(SENTRY / name)
    assert len(events) == 1
    event = events.iloc[0]
    raw = json.loads((SENTRY / name).read_text())
    assert event["event_id"] == (raw.get("eventID") or raw.get("event_id"))
    assert event["shape"] == shape
    assert event["timestamp"].year == 2020
    assert event["exception_type"] in ("ZeroDivisionError", "NoReverseMatch")
    assert event["title"].startswith(event["exception_type"])
    assert event["tags"]["handled"] == "no"
    assert event["tags"]["mechanism"] == "django"
    assert event["level"] == "error"


def test_both_shapes_of_one_event_agree() -> None:
    detail = load_sentry(SENTRY / "python_zero_division.api_event.json").iloc[0]
    stored = load_sentry(SENTRY / "python_zero_division.event_json.json").iloc[0]
    for column in ("event_id", "timestamp", "title", "culprit", "exception_type", "level"):
        assert detail[column] == stored[column], column
    assert detail["tags"] == stored["tags"]
    # The stored shape has no group id: its grouping hash is the API shape's fingerprint.
    assert detail["issue"] == "group:64"
    assert stored["issue"] == "hash:6c64a182729809288e28b95b0258be01"


def test_a_folder_of_exports_keeps_each_event_once() -> None:
    events = load_sentry(SENTRY)
    assert sorted(events["event_id"]) == [
        "3e7c1345914d4924926d795ade8240cb",
        "dd9e1afb828a44d5b4df0183adaee5d8",
    ]
    assert events["timestamp"].is_monotonic_increasing


def sdk_event(
    i: int, *, exc: str, release: str, breaker: str, user: str = "admin"
) -> dict[str, Any]:
    """An event as the service's `before_send` hands it to its export."""
    return {
        "event_id": f"{i:032x}",
        "timestamp": f"2026-11-30T04:31:{i:02d}.5Z",
        "level": "error",
        "platform": "python",
        "environment": "generated",
        "release": release,
        "transaction": "/api/admin/games/import/{bgg_id}",
        "tags": {"user_type": user, "endpoint_type": "api", "bgg_breaker": breaker},
        "fingerprint": ["bgg-unavailable"] if exc == "BggUnavailable" else ["{{ default }}"],
        "exception": {
            "values": [
                {
                    "type": exc,
                    "value": f"BGG answered {500 + i}",
                    "stacktrace": {
                        "frames": [{"function": "f", "module": "m", "in_app": True, "lineno": 3}]
                    },
                }
            ]
        },
    }


def write_export(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(to_api_event(e)) + "\n" for e in events), "utf-8")
    return path


def test_the_service_export(tmp_path: Path) -> None:
    path = write_export(
        tmp_path / "sentry.jsonl",
        [
            sdk_event(1, exc="BggTransientError", release="aaa", breaker="closed"),
            sdk_event(2, exc="BggTransientError", release="aaa", breaker="closed"),
            sdk_event(3, exc="BggUnavailable", release="bbb", breaker="open"),
        ],
    )
    events = load_sentry(path)
    assert events["release"].tolist() == ["aaa", "aaa", "bbb"]
    assert events["tags"].map(lambda t: t["bgg_breaker"]).tolist() == ["closed", "closed", "open"]
    assert events["exception_type"].tolist() == ["BggTransientError"] * 2 + ["BggUnavailable"]
    # Numbers in titles do not split an issue; the custom fingerprint names its issue.
    assert events["issue"].nunique() == 2
    assert events["issue"].iloc[2] == "fingerprint:bgg-unavailable"
    assert set(events["shape"]) == {"api_event"}


def test_the_events_list_endpoint(tmp_path: Path) -> None:
    listing = [
        {
            "id": "1",
            "eventID": "a" * 32,
            "groupID": "7",
            "title": "KeyError: 'x'",
            "message": "",
            "dateCreated": "2026-11-30T10:00:00Z",
            "platform": "python",
            "tags": [{"key": "user_type", "value": "public"}, {"key": "release", "value": "r1"}],
            "event.type": "error",
            "culprit": "/api/public/games",
        },
        {
            "id": "2",
            "eventID": "b" * 32,
            "groupID": "7",
            "title": "KeyError: 'y'",
            "dateCreated": "2026-11-30T10:05:00Z",
            "tags": [],
        },
    ]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(listing), "utf-8")
    events = load_sentry(path)
    assert events["issue"].tolist() == ["group:7", "group:7"]
    assert events["release"].tolist()[0] == "r1"
    assert events["exception_type"].tolist() == ["KeyError", "KeyError"]
    assert set(events["shape"]) == {"events_list"}


def test_a_discover_csv(tmp_path: Path) -> None:
    path = tmp_path / "discover.csv"
    path.write_text(
        "id,timestamp,title,release,environment,issue,tags[user_type],endpoint_type,error.type\n"
        "e1,2026-11-30T10:00:00+00:00,BggTimeout: slow,r1,production,BGG-1,admin,api,"
        "[BggTimeout]\n"
        "e2,2026-11-30T10:01:00.5Z,BggTimeout: slow,r2,production,BGG-1,public,static,"
        "[BggTimeout]\n",
        encoding="utf-8",
    )
    events = load_sentry(path)
    assert events["event_id"].tolist() == ["e1", "e2"]
    assert events["tags"].iloc[1] == {"user_type": "public", "endpoint_type": "static"}
    assert events["issue"].tolist() == ["group:BGG-1", "group:BGG-1"]
    assert events["exception_type"].tolist() == ["BggTimeout", "BggTimeout"]
    assert events["release"].tolist() == ["r1", "r2"]


def test_a_discover_json_result(tmp_path: Path) -> None:
    path = tmp_path / "discover.json"
    path.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "id": "e1",
                        "timestamp": "2026-11-30T10:00:00Z",
                        "title": "X",
                        "tags[user_type]": "admin",
                    }
                ],
                "meta": {"fields": {}},
            }
        ),
        "utf-8",
    )
    events = load_sentry(path)
    assert events["tags"].iloc[0] == {"user_type": "admin"}
    assert events["shape"].iloc[0] == "discover_json"


@given(
    pairs=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=6),
    shape=st.sampled_from(["dict", "pairs", "objects", "json"]),
)
def test_tags_in_any_of_the_three_shapes(pairs: dict[str, str], shape: str) -> None:
    given_tags: object = {
        "dict": pairs,
        "pairs": [[k, v] for k, v in pairs.items()],
        "objects": [{"key": k, "value": v, "_meta": None} for k, v in pairs.items()],
        "json": json.dumps([{"key": k, "value": v} for k, v in pairs.items()]),
    }[shape]
    assert tags_dict(given_tags, where="x") == pairs


def test_bad_tags_are_named() -> None:
    with pytest.raises(MalformedRowError, match="x line 3: tag 5 is neither"):
        tags_dict([5], where="x line 3")


def test_an_issues_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "issues.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "1",
                    "shortId": "BGG-1",
                    "title": "X",
                    "count": "12",
                    "userCount": 1,
                    "firstSeen": "2026-11-30T10:00:00Z",
                    "lastSeen": "2026-11-30T11:00:00Z",
                }
            ]
        ),
        "utf-8",
    )
    with pytest.raises(InputError, match=r"a list of Sentry issues .* not events: expected events"):
        load_sentry(path)


def test_empty_exports_are_refused(tmp_path: Path) -> None:
    for name, text in (("a.jsonl", ""), ("b.json", "[]"), ("c.csv", "id,timestamp\n")):
        path = tmp_path / name
        path.write_text(text, "utf-8")
        with pytest.raises(InputError, match="is empty: expected at least one Sentry event"):
            load_sentry(path)


def test_missing_and_broken_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_sentry(tmp_path / "nope.jsonl")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"eventID": "a", "dateCreated": "2026-11-30T10:00:00Z"}\n{oops\n', "utf-8")
    with pytest.raises(MalformedRowError, match=r"broken\.jsonl line 2: is not JSON"):
        load_sentry(broken)
    no_time = tmp_path / "no_time.jsonl"
    no_time.write_text('{"eventID": "a"}\n', "utf-8")
    with pytest.raises(MalformedRowError, match="line 1: has no time"):
        load_sentry(no_time)
    bad_time = tmp_path / "bad_time.jsonl"
    bad_time.write_text('{"eventID": "a", "dateCreated": "yesterday"}\n', "utf-8")
    with pytest.raises(MalformedRowError, match="line 1: time 'yesterday' is not a timestamp"):
        load_sentry(bad_time)
    aggregated = tmp_path / "agg.csv"
    aggregated.write_text("title,count()\nX,3\n", "utf-8")
    with pytest.raises(InputError, match="aggregated Discover export"):
        load_sentry(aggregated)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", "utf-8")
    with pytest.raises(InputError, match="not a Discover export of events"):
        load_sentry(other)


def test_a_folder_without_exports(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no Sentry export"):
        load_sentry(tmp_path)


def test_epoch_timestamps(tmp_path: Path) -> None:
    source = json.loads((SENTRY / "python_zero_division.event_json.json").read_text())
    source.pop("datetime")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(source), "utf-8")
    assert load_sentry(path)["timestamp"].iloc[0] == pd.Timestamp("2020-05-02 16:54:20.488Z")


def test_copies_of_the_fixtures_load_as_one_folder(tmp_path: Path) -> None:
    for path in SENTRY.iterdir():
        shutil.copy(path, tmp_path / path.name)
    assert len(load_sentry([tmp_path, tmp_path / "python_zero_division.api_event.json"])) == 2


# -- issue_key and normalise_event, directly ------------------------------------------------------


def test_issue_key_prefers_the_group_then_fingerprint_then_hash_then_title() -> None:
    title = "BggTransientError: BGG answered 503 for game 28720"
    assert issue_key(4512, "bgg-unavailable", ["h1"], "E", title) == "group:4512"
    assert issue_key("0", None, None, None, None) == "group:0"
    assert issue_key("", "bgg-unavailable", ["h1"], "E", title) == "fingerprint:bgg-unavailable"
    assert issue_key(None, None, ["h1", "h2"], "E", title) == "hash:h1"
    assert issue_key(None, None, [], "BggTransientError", title) == (
        "title:BggTransientError:BggTransientError: BGG answered <n> for game <n>"
    )
    assert issue_key(None, None, "h1", None, None) == "title::"  # hashes must be a list


@given(first=st.integers(0, 10**6), second=st.integers(0, 10**6))
def test_issue_key_does_not_split_an_issue_by_its_numbers(first: int, second: int) -> None:
    def key(n: int) -> str:
        return issue_key(None, None, None, "ImageNotFound", f"pic{n}.jpg gone after {n} s")

    assert key(first) == key(second)


def test_normalise_event_from_the_events_api_detail_shape() -> None:
    event = json.loads((SENTRY / "python_zero_division.api_event.json").read_text())
    row = normalise_event(event, where="x.json", shape="api_event", source="x.json")
    assert set(row) == {*EVENT_COLUMNS, "_where"}
    assert row["event_id"] == str(event["eventID"])
    assert row["timestamp"] == event["dateCreated"]  # parsed later, by `events_frame`
    assert row["exception_type"] == "ZeroDivisionError"
    assert row["issue"] == f"group:{event['groupID']}"
    assert (row["shape"], row["source"], row["_where"]) == ("api_event", "x.json", "x.json")
    assert isinstance(row["tags"], dict) and row["tags"]


def test_normalise_event_fields_and_their_fallbacks() -> None:
    row = normalise_event(
        {
            "event_id": "e1",
            "datetime": "2026-11-30T10:00:00Z",
            "timestamp": 1.0,  # `datetime` comes first
            "message": "BGG answered 503",
            "transaction": "/api/admin/games/import/{bgg_id}",
            "tags": [["level", "warning"], ["release", "9b7e3d5"], ["environment", "ci"]],
            "fingerprint": ["{{ default }}"],
            "exception": {"values": [{"type": "OSError"}, {"type": "BggTransientError"}]},
        },
        where="w",
        shape="event_json",
        source="s",
    )
    assert row["event_id"] == "e1"
    assert row["timestamp"] == "2026-11-30T10:00:00Z"
    assert row["title"] == "BGG answered 503"  # no title: the message
    assert row["culprit"] == "/api/admin/games/import/{bgg_id}"
    assert (row["level"], row["release"], row["environment"]) == ("warning", "9b7e3d5", "ci")
    assert row["fingerprint"] is None  # Sentry's default grouping is no custom fingerprint
    assert row["exception_type"] == "BggTransientError"  # the last (outermost) exception
    assert row["issue"] == "title:BggTransientError:BGG answered <n>"
    listed = normalise_event(
        {
            "eventID": "e2",
            "id": "ignored",
            "dateCreated": 1796011600.25,  # epoch seconds
            "title": "ValueError: bad id 7",
            "release": {"version": "4f0c2a1"},
            "fingerprints": ["bgg-unavailable", "{{ default }}"],
            "tags": {"user_type": "admin", "flag": True, "none": None},
        },
        where="w",
        shape="events_list",
        source="s",
    )
    assert listed["event_id"] == "e2"
    assert listed["timestamp"] == pd.Timestamp("2026-11-30T04:06:40.25Z")
    assert listed["exception_type"] == "ValueError"  # from the title
    assert listed["release"] == "4f0c2a1"
    assert listed["fingerprint"] == "bgg-unavailable|{{ default }}"
    assert listed["issue"] == "fingerprint:bgg-unavailable|{{ default }}"
    assert listed["tags"] == {"user_type": "admin", "flag": "true"}
    bare = normalise_event(
        {"id": "e3", "timestamp": "2026-11-30T10:00:00Z", "metadata": {"type": "KeyError"}},
        where="w",
        shape="events_list",
        source="s",
    )
    assert (bare["title"], bare["exception_type"], bare["tags"]) == ("KeyError", "KeyError", {})


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        ([1], MalformedRowError, "w: is a list, not an event object"),
        ({"dateCreated": "2026-11-30"}, MalformedRowError, "w: has no event id"),
        ({"eventID": "e"}, MalformedRowError, "w: has no time (dateCreated"),
        ({"eventID": "e", "dateCreated": ""}, MalformedRowError, "w: has no time"),
        ({"eventID": "e", "dateCreated": "x", "tags": 3}, MalformedRowError, "w: tags of type int"),
        ({"shortId": "BGG-1", "count": "3"}, InputError, "w is a Sentry issue (shortId"),
    ],
)
def test_normalise_event_refuses(event: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        normalise_event(event, where="w", shape="events_list", source="s")
    assert str(caught.value).startswith(message)
