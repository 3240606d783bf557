"""`report.html`: the run for a person - verdict first, then thresholds, phases and figures.

`write_page(folder)` reads what a run left in its report folder (`summary.json`, Locust's
`*_stats_history.csv` and `*_failures.csv`) and writes one self-contained page beside them:
inline CSS, figures as inline SVG, no script and no request anywhere; Locust's own report
(`locust_report.html`) is linked, relatively, for everything else. Because it only reads files,
the page of an earlier run can be written again: `python -m loadtests report DIR`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from loadtests import charts, names
from loadtests.history import History, HistoryError, Series, read_history
from loadtests.summary import from_iso, verdict_code, write_text
from loadtests.thresholds import Kind, build_thresholds, format_value

PAGE = "report.html"
LOCUST_PAGE = "locust_report.html"
SUMMARY = "summary.json"
VERDICTS = {0: "PASSED", 1: "FAILED", 2: "HARNESS ERROR", 130: "INTERRUPTED"}
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Public reads", names.PUBLIC_READS),
    ("Imports", (names.IMPORT, names.IMPORT_BREAKER_OPEN, names.IMPORT_BREAKER_OPENING)),
    ("Admin monitoring", (names.BREAKER_STATUS, names.BREAKERS, names.BACKGROUND_FAILURES)),
    ("Health checks", (names.HEALTH, names.READY)),
)
MIN_REQUESTS_FOR_FIGURE = 10
"""Below this an endpoint's figure would show single requests, not a trend: the table has it."""
# Which threshold an endpoint's figure draws as a target line, and as what.
TARGET_LINES = {
    names.IMPORT_BREAKER_OPEN: ("breaker_rejection_p99_ms", "target: p99 < {} ms"),
    **dict.fromkeys(names.PUBLIC_READS, ("public_p95_ms", "target: p95 < {} ms")),
}


class PageError(Exception):
    """The folder holds no run the page can be written from."""


@dataclass
class Sentence:
    """One threshold as the page states it."""

    name: str
    text: str
    target: str
    measured: str
    passed: bool
    option: str
    reason: str


@dataclass
class Figure:
    """An endpoint's figure and what its caption says."""

    method: str
    name: str
    svg: Markup
    caption: str


@dataclass
class Section:
    """A group of endpoints (public reads, imports, ...)."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    few: list[str] = field(default_factory=list)
    """Endpoints with too few requests for a figure, with their counts."""


def _kinds(options: Mapping[str, Any]) -> dict[str, Kind]:
    try:
        return {threshold.name: threshold.kind for threshold in build_thresholds(options)}
    except (TypeError, ValueError):
        return {}  # options of another version: fall back on the names below


def _kind_of(name: str, kinds: Mapping[str, Kind]) -> Kind:
    if name in kinds:
        return kinds[name]
    if name.endswith("ratio"):
        return "ratio"
    return "error_rate" if name.endswith("rate") else "percentile"


def _group(summary: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    groups = summary.get("groups") or {}
    return groups.get(key) or {}


def _what(name: str, label: str, summary: Mapping[str, Any]) -> tuple[str, str]:
    """(what must stay below the target, what the measurement adds) for a threshold."""
    rejections = _group(summary, "breaker_rejection").get("requests") or 0
    if name == "error_rate":
        failed = f"{summary.get('failures', 0):,} of {summary.get('requests', 0):,}"
        return "The error rate over all requests", f" ({failed} requests failed)"
    if name == "breaker_rejection_p99_ms":
        return (
            "While the BGG breaker is open, the p99 response time of the imports it turns "
            f"away at once (entry “{names.IMPORT_BREAKER_OPEN}”)",
            f" over {rejections:,} rejections",
        )
    if name == "public_p95_ms":
        return "The p95 response time of the slowest public read (list, search, detail)", ""
    if name == "breaker_to_health_p99_ratio":
        extra = ""
        breaker, health = summary.get("breaker_rejection_p99_ms"), summary.get("health_p99_ms")
        if breaker is not None and health is not None:
            extra = f" ({breaker} ms against {health} ms)"
        return f"The p99 of “{names.IMPORT_BREAKER_OPEN}” divided by the p99 of GET /health", extra
    return label[:1].upper() + label[1:], ""


def sentences(summary: Mapping[str, Any]) -> list[Sentence]:
    """Each threshold of the summary as a sentence with its target, measurement and result."""
    kinds = _kinds(summary.get("options") or {})
    found = []
    for item in summary.get("thresholds") or []:
        name = str(item.get("name", ""))
        kind = _kind_of(name, kinds)
        limit = format_value(kind, float(item["target"]))
        target = f"< {limit}"
        measured = item.get("measured")
        shown = "no data" if measured is None else format_value(kind, float(measured))
        subject, extra = _what(name, str(item.get("label") or name), summary)
        if measured is None:
            text = f"{subject} must stay below {limit}: nothing was measured."
        else:
            text = f"{subject} must stay below {limit}: it was {shown}{extra}."
        found.append(
            Sentence(
                name,
                text,
                target,
                shown,
                bool(item.get("passed")),
                str(item.get("option") or ""),
                str(item.get("message") or ""),
            )
        )
    return found


def _entry(summary: Mapping[str, Any], method: str, name: str) -> Mapping[str, Any]:
    for entry in summary.get("entries") or []:
        if entry.get("name") == name and entry.get("method") == method:
            return dict(entry)
    return {}


def _caption(entry: Mapping[str, Any], series: Series) -> str:
    requests = entry.get("requests", series.requests)
    failures = entry.get("failures", series.failures)
    text = f"{_count(requests, 'request')}, {failures:,} failed"
    if entry.get("p50_ms") is not None:
        text += (
            f"; over the whole run p50 {entry['p50_ms']} ms, p95 {entry['p95_ms']} ms, "
            f"p99 {entry['p99_ms']} ms, slowest {entry['max_ms']} ms"
        )
    return text


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _target(summary: Mapping[str, Any], name: str) -> tuple[str, float] | None:
    line = TARGET_LINES.get(name)
    if line is None:
        return None
    for item in summary.get("thresholds") or []:
        if item.get("name") == line[0]:
            return line[1].format(f"{float(item['target']):g}"), float(item["target"])
    return None


def sections(summary: Mapping[str, Any], history: History) -> list[Section]:
    """The endpoints' figures, grouped as the page shows them (unknown names last)."""
    phases = summary.get("phases") or []
    duration = summary.get("duration_s")
    grouped = {title: Section(title) for title, _ in SECTIONS}
    other = Section("Other requests")
    order = {name: (i, j) for i, (_, group) in enumerate(SECTIONS) for j, name in enumerate(group)}
    endpoints = sorted(history.endpoints(), key=lambda s: (order.get(s.name, (99, 0)), s.name))
    for index, series in enumerate(endpoints):
        position = order.get(series.name)
        section = grouped[SECTIONS[position[0]][0]] if position else other
        if series.requests < MIN_REQUESTS_FOR_FIGURE:
            section.few.append(
                f"{series.method} {series.name}: {_count(series.requests, 'request')}"
            )
            continue
        target = _target(summary, series.name)
        svg = charts.endpoint(
            series,
            phases,
            salt=f"endpoint-{index}",
            duration=float(duration) if duration else None,
            target=target,
        )
        caption = _caption(_entry(summary, series.method, series.name), series)
        if target is not None:
            caption += f"; {target[0]}"
        drawn = Markup(svg)  # noqa: S704 - SVG matplotlib drew, text escaped by it
        section.figures.append(Figure(series.method, series.name, drawn, caption))
    return [section for section in (*grouped.values(), other) if section.figures or section.few]


def read_failures(folder: Path) -> list[dict[str, str]]:
    """Locust's failures CSV (`Method`, `Name`, `Error`, `Occurrences`), most frequent first."""
    found = sorted(folder.glob("*_failures.csv"))
    if not found:
        return []
    try:
        with found[0].open(newline="", encoding="utf-8") as handle:
            rows = [dict(row) for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []

    def count(row: Mapping[str, str]) -> int:
        text = row.get("Occurrences") or "0"
        return int(text) if text.isdigit() else 0

    return sorted(rows, key=count, reverse=True)


def _history(folder: Path, summary: Mapping[str, Any]) -> tuple[History | None, str]:
    found = sorted(folder.glob("*_stats_history.csv"))
    if not found:
        return None, "no statistics history (locust_stats_history.csv) in this folder"
    start = from_iso(summary.get("started_at"))
    try:
        return read_history(found[0], start), ""
    except HistoryError as exc:
        return None, str(exc)


def load_summary(folder: Path) -> dict[str, Any]:
    """The folder's `summary.json`; `PageError` when it has none or it is not a summary."""
    path = folder / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PageError(f"{folder}: no {SUMMARY} (is this a load run's report folder?)") from None
    except (OSError, ValueError) as exc:
        raise PageError(f"{path}: not readable as JSON: {exc}") from None
    if not isinstance(data, dict) or "thresholds" not in data:
        raise PageError(f"{path}: not a load run's summary (no thresholds)")
    return data


def context(folder: Path, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the template shows."""
    # the command's own exit code when it recorded one (it also knows how Locust ended)
    code = summary.get("exit_code", verdict_code(summary))
    judged = sentences(summary)  # first: a summary it cannot state fails before any drawing
    history, history_problem = _history(folder, summary)
    overview = None
    if history is not None and history.total is not None:
        overview = Markup(charts.overview(history.total, summary.get("phases") or []))  # noqa: S704
    run = summary.get("run") or {}
    options = summary.get("options") or {}
    down = [p for p in summary.get("phases") or [] if p.get("bgg") == "down"]
    return {
        "summary": summary,
        "started": _when(summary.get("started_at")),
        "finished": _when(summary.get("finished_at")),
        "down": down,
        "run": run,
        "options": {k: v for k, v in options.items() if k not in ("summary_json",)},
        "code": code,
        "verdict": VERDICTS.get(code, "FAILED"),
        "held": sum(1 for s in judged if s.passed),
        "sentences": judged,
        "ratio_judged": any(s.name == "breaker_to_health_p99_ratio" for s in judged),
        "phases": summary.get("phases") or [],
        "overview": overview,
        "sections": sections(summary, history) if history is not None else [],
        "history_problem": history_problem,
        "failures": read_failures(folder),
        "entries": summary.get("entries") or [],
        "locust_page": LOCUST_PAGE if (folder / LOCUST_PAGE).is_file() else None,
        "files": sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != PAGE),
        "ms": _ms,
        "percent": _percent,
    }


def _when(text: Any) -> str:
    """`2026-12-06T11:28:37Z` as `2026-12-06 11:28:37 UTC`."""
    if not isinstance(text, str):
        return "unknown"
    return text.replace("T", " ").replace("Z", " UTC")


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value:,} ms"


def _percent(value: Any) -> str:
    return "–" if value is None else format_value("error_rate", float(value))


def render(folder: Path, summary: Mapping[str, Any]) -> str:
    """The page's HTML."""
    environment = Environment(
        loader=PackageLoader("loadtests", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2").render(**context(folder, summary))


def write_page(folder: Path) -> Path:
    """Write `folder/report.html` from the run's files there; its path."""
    summary = load_summary(folder)
    path = folder / PAGE
    write_text(path, render(folder, summary))
    return path
