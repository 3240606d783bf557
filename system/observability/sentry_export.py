"""Sentry SDK events turned into the shape of Sentry's events API, for the JSON-lines export.

The notebooks read this export and real exports from Sentry's API with one loader, so the
shape follows an API event (`eventID`, `dateCreated`, `title`, `message`, `culprit`,
`platform`, `tags` as `{key, value}`, `entries` with the exception and its frames,
`fingerprints`, `contexts`, ...), as in `fixtures/sentry/*.api_event.json`.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _iso(value: object) -> str:
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        return value if value.endswith("Z") else value.replace("+00:00", "") + "Z"
    else:
        when = datetime.now(UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    lineno = frame.get("lineno")
    context: list[list[Any]] = []
    if lineno is not None:
        before = frame.get("pre_context") or []
        after = frame.get("post_context") or []
        start = lineno - len(before)
        lines = [*before, frame.get("context_line") or "", *after]
        context = [[start + i, line] for i, line in enumerate(lines)]
    return {
        "filename": frame.get("filename"),
        "absPath": frame.get("abs_path"),
        "module": frame.get("module"),
        "function": frame.get("function"),
        "lineNo": lineno,
        "colNo": None,
        "inApp": bool(frame.get("in_app")),
        "context": context,
        "vars": frame.get("vars"),
    }


def _exception_entry(event: dict[str, Any]) -> dict[str, Any] | None:
    values = (event.get("exception") or {}).get("values") or []
    if not values:
        return None
    return {
        "type": "exception",
        "data": {
            "values": [
                {
                    "type": value.get("type"),
                    "value": value.get("value"),
                    "module": value.get("module"),
                    "mechanism": value.get("mechanism"),
                    "stacktrace": {
                        "frames": [
                            _frame(f) for f in (value.get("stacktrace") or {}).get("frames", [])
                        ]
                    },
                }
                for value in values
            ],
            "hasSystemFrames": True,
        },
    }


def _message(event: dict[str, Any]) -> str:
    logentry = event.get("logentry") or {}
    text = logentry.get("formatted") or logentry.get("message") or event.get("message")
    if text:
        return str(text)
    values = (event.get("exception") or {}).get("values") or []
    return f"{values[-1].get('type')}: {values[-1].get('value')}" if values else ""


def _culprit(event: dict[str, Any]) -> str:
    if event.get("transaction"):
        return str(event["transaction"])
    values = (event.get("exception") or {}).get("values") or []
    frames = (values[-1].get("stacktrace") or {}).get("frames", []) if values else []
    in_app = [f for f in frames if f.get("in_app")] or frames
    if in_app:
        return f"{in_app[-1].get('module')} in {in_app[-1].get('function')}"
    return ""


def to_api_event(event: dict[str, Any]) -> dict[str, Any]:
    """One SDK event (as `before_send` returns it) in the events-API shape."""
    tags = dict(event.get("tags") or {})
    tags.setdefault("environment", event.get("environment"))
    tags.setdefault("level", event.get("level", "error"))
    if event.get("release"):
        tags.setdefault("release", event["release"])
    values = (event.get("exception") or {}).get("values") or []
    title = f"{values[-1].get('type')}: {values[-1].get('value')}" if values else _message(event)
    entries = [e for e in [_exception_entry(event)] if e is not None]
    if event.get("request"):
        entries.append({"type": "request", "data": event["request"]})
    if event.get("breadcrumbs"):
        entries.append({"type": "breadcrumbs", "data": event["breadcrumbs"]})
    return {
        "eventID": event.get("event_id"),
        "id": event.get("event_id"),
        "type": "error",
        "dateCreated": _iso(event.get("timestamp")),
        "title": title,
        "message": _message(event),
        "culprit": _culprit(event),
        "platform": event.get("platform", "python"),
        "location": None,
        "tags": [{"key": k, "value": str(v)} for k, v in sorted(tags.items()) if v is not None],
        "release": {"version": event["release"]} if event.get("release") else None,
        "entries": entries,
        "fingerprints": list(event.get("fingerprint") or ["{{ default }}"]),
        "contexts": event.get("contexts") or {},
        "sdk": event.get("sdk"),
        "user": event.get("user"),
        "metadata": {"type": values[-1].get("type"), "value": values[-1].get("value")}
        if values
        else {"title": title},
    }


class JsonLinesExport:
    """Appends API-shaped events to a file, one per line (events come from any thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any]) -> None:
        """Append one event."""
        line = json.dumps(to_api_event(event), default=str, separators=(",", ":"))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
