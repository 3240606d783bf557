"""Sentry events from any of the shapes Sentry (and the service) write, as one DataFrame.

Accepted, one file or a folder of them:

- **JSON lines** (`.jsonl`, `.ndjson`): one event per line, e.g. the service's
  `SENTRY_EXPORT_PATH` (events-API shape).
- **JSON** (`.json`): one event (the events API's detail shape, `GET .../events/{id}/`, or the
  stored event JSON with `event_id`, `datetime`, tags as `[key, value]` pairs); a list of
  events (the list endpoint `GET /api/0/projects/{org}/{project}/events/`, lighter: no
  entries, no fingerprints); or a Discover query result `{"data": [...], "meta": ...}`.
- **Discover CSV** (`.csv`, "Export all to CSV"): one row per event. Needs an id column
  (`id`, `event_id`, `eventID`) and a time column (`timestamp`, `dateCreated`); uses `title`,
  `message`, `culprit` / `transaction`, `release`, `environment`, `level`, `issue` /
  `issue.id` / `groupID`, `error.type`, `fingerprint`; tags come from `tags[KEY]` columns,
  from a `tags` column (JSON in any tag shape), and from any other column, which is taken as
  a tag of that name (so `user_type`, `endpoint_type` columns work). An aggregate column
  (`count()`, ...) means the export is not one row per event: an error.

Tags are accepted as a dict, as `[key, value]` pairs or as `{key, value}` objects. A Sentry
*issues* list (`shortId`, `count`, `firstSeen` instead of events), an empty export, or an
event without an id or a time is an `InputError` naming the file and the line or record.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from notebooks.reliability.errors import InputError, MalformedRowError, json_lines
from notebooks.reliability.messages import normalise_message
from notebooks.reliability.timeutil import UTC_DTYPE, utc_series

#: The columns of the events frame, in order.
EVENT_COLUMNS = (
    "event_id",
    "timestamp",
    "title",
    "message",
    "culprit",
    "level",
    "release",
    "environment",
    "issue",
    "fingerprint",
    "exception_type",
    "platform",
    "tags",
    "shape",
    "source",
)
DEFAULT_FINGERPRINT = "{{ default }}"
_ISSUE_KEYS = frozenset({"shortId", "firstSeen", "lastSeen", "userCount", "permalink"})
_AGGREGATE = re.compile(r"^\w+\(.*\)$")
_ID_COLUMNS = ("id", "event_id", "eventid", "event.id")
_TIME_COLUMNS = ("timestamp", "datecreated", "time", "date", "datetime")
_KNOWN_CSV = {
    "title": "title",
    "message": "message",
    "culprit": "culprit",
    "transaction": "transaction",
    "release": "release",
    "environment": "environment",
    "level": "level",
    "issue": "issue",
    "issue.id": "issue",
    "groupid": "issue",
    "group_id": "issue",
    "error.type": "exception_type",
    "fingerprint": "fingerprint",
    "platform": "platform",
    "project": "project",
    "tags": "tags",
}
_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv")


def tags_dict(tags: object, *, where: str) -> dict[str, str]:
    """Tags in any of Sentry's shapes (dict, `[k, v]` pairs, `{key, value}` objects) as a dict.

    None gives {}; anything else raises `MalformedRowError` with `where` (e.g. `x.json event 3`).
    """
    if tags is None:
        return {}
    if isinstance(tags, str):
        text = tags.strip()
        if not text:
            return {}
        try:
            return tags_dict(json.loads(text), where=where)
        except json.JSONDecodeError:
            pairs = [p.split("=", 1) for p in re.split(r"[;,]\s*", text) if "=" in p]
            if pairs:
                return {k.strip(): v.strip() for k, v in pairs}
            raise MalformedRowError(
                where, "", f"tags {tags!r} are not JSON or key=value pairs"
            ) from None
    if isinstance(tags, Mapping):
        return {str(k): _tag_value(v) for k, v in tags.items() if v is not None}
    if isinstance(tags, list):
        out: dict[str, str] = {}
        for item in tags:
            if isinstance(item, Mapping) and "key" in item:
                if item.get("value") is not None:
                    out[str(item["key"])] = _tag_value(item["value"])
            elif isinstance(item, list | tuple) and len(item) == 2:
                if item[1] is not None:
                    out[str(item[0])] = _tag_value(item[1])
            else:
                raise MalformedRowError(
                    where, "", f"tag {item!r} is neither [key, value] nor {{key, value}}"
                )
        return out
    raise MalformedRowError(where, "", f"tags of type {type(tags).__name__} are not tags")


def _tag_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _exception_type(event: Mapping[str, Any]) -> str | None:
    metadata = event.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("type"):
        return str(metadata["type"])
    for entry in event.get("entries") or []:
        if isinstance(entry, Mapping) and entry.get("type") == "exception":
            values = (entry.get("data") or {}).get("values") or []
            if values and isinstance(values[-1], Mapping) and values[-1].get("type"):
                return str(values[-1]["type"])
    exception = event.get("exception")
    if isinstance(exception, Mapping):
        values = exception.get("values") or []
        if values and isinstance(values[-1], Mapping) and values[-1].get("type"):
            return str(values[-1]["type"])
    title = event.get("title")
    if isinstance(title, str) and ":" in title:
        head = title.split(":", 1)[0].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", head):
            return head
    return None


def _release(value: object) -> str | None:
    if isinstance(value, Mapping):
        return _text(value.get("version") or value.get("shortVersion"))
    return _text(value)


def _fingerprint(value: object) -> str | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    parts = [str(v) for v in value]
    if all(p == DEFAULT_FINGERPRINT for p in parts):
        return None
    return "|".join(parts)


def issue_key(
    group_id: object,
    fingerprint: str | None,
    hashes: object,
    exception_type: str | None,
    title: str | None,
) -> str:
    """How events are grouped into issues: Sentry's group id when the export has it, else a
    custom fingerprint, else the stored event's grouping hash, else the exception type and the
    title with its numbers and ids taken out (an approximation of Sentry's default grouping)."""
    if group_id not in (None, ""):
        return f"group:{group_id}"
    if fingerprint:
        return f"fingerprint:{fingerprint}"
    if isinstance(hashes, list) and hashes:
        return f"hash:{hashes[0]}"
    return f"title:{exception_type or ''}:{normalise_message(title)}"


def normalise_event(event: object, *, where: str, shape: str, source: str) -> dict[str, Any]:
    """One event of any JSON shape as a row of the events frame (timestamp still raw)."""
    if not isinstance(event, Mapping):
        raise MalformedRowError(where, "", f"is a {type(event).__name__}, not an event object")
    if _ISSUE_KEYS & set(event) and not ({"eventID", "event_id"} & set(event)):
        raise InputError(
            f"{where} is a Sentry issue (shortId, count, firstSeen), not an event: expected "
            "events (eventID + dateCreated), e.g. from /api/0/projects/{org}/{project}/events/ "
            "or the service's SENTRY_EXPORT_PATH"
        )
    event_id = event.get("eventID") or event.get("event_id") or event.get("id")
    if not event_id:
        raise MalformedRowError(where, "", "has no event id (eventID, event_id or id)")
    when: object = None
    for key in ("dateCreated", "datetime", "timestamp", "dateReceived", "received"):
        if event.get(key) not in (None, ""):
            when = event[key]
            break
    if when is None:
        raise MalformedRowError(where, "", "has no time (dateCreated, datetime or timestamp)")
    if isinstance(when, int | float) and not isinstance(when, bool):
        when = pd.Timestamp(round(float(when) * 1_000_000), unit="us", tz="UTC")
    tags = tags_dict(event.get("tags"), where=where)
    exception_type = _exception_type(event)
    fingerprint = _fingerprint(event.get("fingerprints", event.get("fingerprint")))
    title = _text(event.get("title")) or _text(event.get("message")) or exception_type
    return {
        "event_id": str(event_id),
        "timestamp": when,
        "title": title,
        "message": _text(event.get("message")),
        "culprit": _text(event.get("culprit") or event.get("transaction")),
        "level": _text(event.get("level") or tags.get("level")),
        "release": _release(event.get("release")) or _text(tags.get("release")),
        "environment": _text(event.get("environment") or tags.get("environment")),
        "issue": issue_key(
            event.get("groupID"), fingerprint, event.get("hashes"), exception_type, title
        ),
        "fingerprint": fingerprint,
        "exception_type": exception_type,
        "platform": _text(event.get("platform")),
        "tags": tags,
        "shape": shape,
        "source": source,
        "_where": where,
    }


def _shape_of(event: object) -> str:
    """Which JSON shape an event is in (`normalise_event` refuses one that is no object)."""
    if isinstance(event, Mapping) and "entries" in event:
        return "api_event"
    if isinstance(event, Mapping) and "event_id" in event:
        return "event_json"
    return "events_list"


def _json_events(path: Path) -> Iterator[tuple[str, object, str]]:
    """(where, event, shape) for each event of a `.json` file."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), list):
        for index, row in enumerate(payload["data"], 1):
            yield (
                f"{path} row {index}",
                _discover_event(row, where=f"{path} row {index}"),
                "discover_json",
            )
        return
    if isinstance(payload, Mapping):
        yield str(path), payload, _shape_of(payload)
        return
    if isinstance(payload, list):
        if payload and all(isinstance(e, Mapping) for e in payload):
            first = payload[0]
            if _ISSUE_KEYS & set(first) and not ({"eventID", "event_id"} & set(first)):
                raise InputError(
                    f"{path} is a list of Sentry issues (shortId, count, firstSeen), not events: "
                    "expected events (eventID + dateCreated) from "
                    "/api/0/projects/{org}/{project}/events/, a Discover export or the "
                    "service's SENTRY_EXPORT_PATH"
                )
        for index, event in enumerate(payload, 1):
            yield f"{path} event {index}", event, _shape_of(event)
        return
    raise InputError(f"{path} holds a JSON {type(payload).__name__}: expected an event or a list")


def _jsonl_events(path: Path) -> Iterator[tuple[str, object, str]]:
    for number, event in json_lines(path):
        yield f"{path} line {number}", event, _shape_of(event)


def _discover_event(row: object, *, where: str) -> dict[str, Any]:
    """A Discover row (CSV or the JSON `data` list) as an event mapping for `normalise_event`."""
    if not isinstance(row, Mapping):
        raise MalformedRowError(where, "", "is not an object")
    lowered = {str(k).strip(): v for k, v in row.items()}
    event: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for key, value in lowered.items():
        name = key.lower()
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if name in _ID_COLUMNS:
            event.setdefault("event_id", value)
        elif name in _TIME_COLUMNS:
            event.setdefault("timestamp", value)
        elif name.startswith("tags[") and name.endswith("]"):
            tags[key[5:-1]] = str(value)
        elif name in _KNOWN_CSV:
            target = _KNOWN_CSV[name]
            if target == "tags":
                tags.update(tags_dict(value, where=where))
            elif target == "exception_type":
                text = str(value).strip().strip("[]").split(",")[0].strip().strip("'\"")
                event["metadata"] = {"type": text} if text else {}
            elif target == "issue":
                event["groupID"] = value
            elif target == "fingerprint":
                event["fingerprint"] = [p for p in str(value).split("|") if p]
            elif target == "project":
                tags.setdefault("project", str(value))
            else:
                event[target] = value
        else:
            tags[key] = str(value)
    event["tags"] = tags
    return event


def _csv_events(path: Path) -> Iterator[tuple[str, object, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    aggregates = [h for h in header if _AGGREGATE.match(h)]
    if aggregates:
        raise InputError(
            f"{path} is an aggregated Discover export ({', '.join(aggregates[:3])}): expected "
            "one row per event, with the id and timestamp fields"
        )
    lowered = [h.lower() for h in header]
    if not any(h in _ID_COLUMNS for h in lowered) or not any(h in _TIME_COLUMNS for h in lowered):
        raise InputError(
            f"{path} is not a Discover export of events: it has the columns "
            f"{', '.join(header[:8]) or '(none)'}; expected an id column (id, event_id) and a "
            "time column (timestamp)"
        )
    for index, row in enumerate(reader, 1):
        where = f"{path} record {index}"
        surplus = row.pop(None, None)
        if surplus:
            raise MalformedRowError(
                where, "", f"has {len(header) + len(surplus)} fields, the header {len(header)}"
            )
        yield where, _discover_event(row, where=where), "discover_csv"


def _files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _EXTENSIONS)
            if not found:
                raise InputError(
                    f"{path} holds no Sentry export: expected .jsonl, .json or .csv files"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file (expected a Sentry export)")
    return files


def _events_of(path: Path) -> Iterator[tuple[str, object, str]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_events(path)
    if suffix == ".json":
        return _json_events(path)
    if suffix == ".csv":
        return _csv_events(path)
    head = path.read_text(encoding="utf-8", errors="replace")[:4096].lstrip()
    if head.startswith("[") or (head.startswith("{") and head.count("\n{") == 0):
        return _json_events(path)
    if head.startswith("{"):
        return _jsonl_events(path)
    return _csv_events(path)


def empty_events() -> pd.DataFrame:
    """An events frame with no rows (the standard columns and dtypes)."""
    frame = pd.DataFrame({c: pd.Series(dtype="str") for c in EVENT_COLUMNS})
    frame["timestamp"] = pd.Series(dtype=UTC_DTYPE)
    frame["tags"] = pd.Series(dtype=object)
    return frame


def events_frame(records: list[dict[str, Any]], *, source: str = "events") -> pd.DataFrame:
    """Normalised event rows as the events frame, timestamps parsed (aware UTC), oldest first."""
    if not records:
        return empty_events()
    frame = pd.DataFrame.from_records(records, columns=list(EVENT_COLUMNS))
    labels = pd.Series(
        [r.get("_where") or f"{source} event {r['event_id']}" for r in records], index=frame.index
    )
    frame["timestamp"] = utc_series(frame["timestamp"], source="", column="time", labels=labels)
    text_columns = [c for c in EVENT_COLUMNS if c not in ("timestamp", "tags")]
    frame[text_columns] = frame[text_columns].astype("str")
    return frame.sort_values(["timestamp", "event_id"], kind="stable").reset_index(drop=True)


def load_sentry(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Every event in `paths` (files or folders, any accepted shape) as one frame.

    Columns `EVENT_COLUMNS`: `timestamp` aware UTC, `tags` a dict per event, `issue` the
    grouping key (see `issue_key`), `shape` which format the event came in. Duplicate event
    ids (the same event in two exports) are kept once. Raises `InputError` when there is no
    event at all.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    records: list[dict[str, Any]] = []
    files = _files(paths)
    for path in files:
        count = 0
        for where, event, shape in _events_of(path):
            records.append(normalise_event(event, where=where, shape=shape, source=path.name))
            count += 1
        if count == 0:
            raise InputError(f"{path} is empty: expected at least one Sentry event")
    frame = events_frame(records, source=", ".join(p.name for p in files))
    return frame.drop_duplicates("event_id", keep="first").reset_index(drop=True)
