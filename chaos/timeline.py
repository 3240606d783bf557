"""One scenario's timeline, drawn from `events.jsonl` as an SVG for the HTML report.

Four panels share the time axis (seconds since the scenario started), with every fault window
shaded across all of them:

- the circuit breakers' states (closed, half-open, open), as bands;
- the public API's latency, each sample a dot (errors in red);
- the share of public API samples that failed, per second;
- the imports the harness made, each a dot at its latency, coloured by its answer.

Breaker changes are placed at the service's own timestamp of the transition where it reported
one (`breaker_transition`'s `at`), since the watcher may have been paused (`chaos.watch.quiet`)
when the breaker changed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.events import parse_time
from chaos.svg import inline_svg

#: Colours a person reads without a legend: green good, amber in between, red bad.
STATE_COLOURS = {"closed": "#2e9d57", "half_open": "#e0a526", "open": "#d64541"}
FAULT_COLOUR = "#f3c4c1"
FAULT_BAR = "#e58a84"
RULE_BAR = "#f0c27a"
OK_COLOUR = "#3b6fb6"
ERROR_COLOUR = "#d64541"
FAILED_COLOUR = "#7a1f1f"


@dataclass
class Timeline:
    """What one scenario's events say, in seconds since the scenario started."""

    end: float = 0.0
    #: (name, start, end or None for a fault that was never switched off).
    faults: list[tuple[str, float, float | None]] = field(default_factory=list)
    #: ("CDN: slow-404", start, end) of every rule the fake upstreams applied.
    rules: list[tuple[str, float, float]] = field(default_factory=list)
    #: "BGG API" (or "BGG API, service 2") -> [(t, state)], in time order.
    breakers: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    #: (t, latency ms, ok) of every public API sample.
    public: list[tuple[float, float, bool]] = field(default_factory=list)
    #: (t, latency ms, status or None) of every import.
    imports: list[tuple[float, float, int | None]] = field(default_factory=list)
    #: (t, hypothesis name) of every hypothesis that failed.
    failed: list[tuple[float, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to draw."""
        return not (self.faults or self.rules or self.breakers or self.public or self.imports)


def timeline(events: Iterable[dict[str, Any]]) -> Timeline:
    """The timeline of one scenario's events (those whose `scenario` is its name)."""
    events = list(events)
    start = next((e["t"] for e in events if e.get("kind") == "scenario_start"), None)
    if start is None:
        start = min((e["t"] for e in events if isinstance(e.get("t"), int | float)), default=0.0)
    line = Timeline()
    open_faults: dict[str, float] = {}
    open_rules: dict[str, list[tuple[str, float]]] = {}
    services = {e.get("service") for e in events if e.get("kind") == "breaker_state"}
    for event in events:
        kind, t = event.get("kind"), float(event.get("t", start)) - start
        line.end = max(line.end, t)
        if kind == "fault":
            _fault(line, open_faults, str(event.get("fault")), bool(event.get("on")), t)
        elif kind == "fault_rules":
            upstream = str(event.get("upstream")).upper()
            for label, began in open_rules.pop(upstream, []):
                line.rules.append((label, began, t))
            names = [str(r.get("name") or "rule") for r in event.get("rules") or []]
            open_rules[upstream] = [(f"{upstream}: {name}", t) for name in names]
        elif kind in ("breaker_state", "breaker_transition"):
            state = event.get("state") if kind == "breaker_state" else event.get("to_state")
            if kind == "breaker_transition":
                at, seen = parse_time(event.get("at")), parse_time(event.get("time"))
                if at is not None and seen is not None:
                    t -= max(0.0, seen - at)  # when the service says it changed
            name = str(event.get("breaker"))
            if len(services) > 1:
                name += f", service {int(event.get('service') or 0) + 1}"
            line.breakers.setdefault(name, []).append((max(t, 0.0), str(state)))
        elif kind == "public_call" and isinstance(event.get("latency_ms"), int | float):
            line.public.append((t, float(event["latency_ms"]), event.get("status") == 200))
        elif kind == "import" and isinstance(event.get("latency_ms"), int | float):
            status = event.get("status")
            line.imports.append((t, float(event["latency_ms"]), status))
        elif kind == "probe" and not event.get("met"):
            line.failed.append((t, str(event.get("probe"))))
    for name, began in open_faults.items():
        line.faults.append((name, began, None))
    for rules in open_rules.values():
        line.rules += [(label, began, line.end) for label, began in rules]
    for name, points in line.breakers.items():
        line.breakers[name] = _changes(sorted(points))
    return line


def _fault(line: Timeline, open_faults: dict[str, float], name: str, on: bool, t: float) -> None:
    if on:
        open_faults.setdefault(name, t)
        return
    # Switched off under another name ("all" in the rollbacks, "restart" after "sigterm"):
    # that ends every fault still on.
    ending = [name] if name in open_faults else list(open_faults)
    for key in ending:
        line.faults.append((key, open_faults.pop(key), t))


def _changes(points: list[tuple[float, str]]) -> list[tuple[float, str]]:
    kept: list[tuple[float, str]] = []
    for t, state in points:
        if not kept or kept[-1][1] != state:
            kept.append((t, state))
    return kept


def svg(line: Timeline, *, salt: str) -> str:
    """The timeline as an inline `<svg>` element (text kept as text, ids unique per `salt`)."""
    import matplotlib as mpl
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    end = max(line.end, 1.0)
    with mpl.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": salt,
            "font.size": 9,
            "font.family": "sans-serif",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 9,
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
        }
    ):
        figure = Figure(figsize=(9.5, 6.4), layout="constrained")
        rows = len({n for n, _, _ in line.faults} | {n for n, _, _ in line.rules}) + len(
            line.breakers
        )
        figure.set_figheight(5.4 + 0.22 * rows)
        axes = figure.subplots(
            4, 1, sharex=True, height_ratios=[0.3 + 0.3 * max(rows, 2), 1.6, 1.0, 1.6]
        )
        breakers, latency, errors, imports = axes
        for ax in axes:
            for _, began, ended in line.faults:
                if ended is None:
                    ax.axvline(began, color=ERROR_COLOUR, linewidth=1.2, linestyle="--")
                else:
                    ax.axvspan(began, ended, color=FAULT_COLOUR, alpha=0.55, linewidth=0)
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        _breakers(breakers, line, end)
        _latency(latency, line)
        _errors(errors, line, end)
        _imports(imports, line)
        for t, _ in line.failed:
            for ax in axes:
                ax.axvline(t, color=FAILED_COLOUR, linewidth=1.0, linestyle=":")
        imports.set_xlim(0, end * 1.02)
        imports.set_xlabel("seconds since the scenario started")
        windows = list(dict.fromkeys(name for name, _, ended in line.faults if ended is not None))
        moments = list(dict.fromkeys(name for name, _, ended in line.faults if ended is None))
        handles: list[Any] = []
        if windows or not moments:
            handles.append(Patch(color=FAULT_COLOUR, label=f"fault on: {', '.join(windows)}"
                                 if windows else "fault on"))  # fmt: skip
        if moments:
            handles.append(Line2D([], [], color=ERROR_COLOUR, linestyle="--",
                                  label=f"{', '.join(moments)} (at that moment)"))  # fmt: skip
        if line.failed:
            # The table above names each; the line shows when it was judged.
            handles.append(Line2D([], [], color=FAILED_COLOUR, linestyle=":",
                                  label="a hypothesis failed (judged here)"))  # fmt: skip
        handles += [
            Patch(color=STATE_COLOURS["closed"], label="breaker closed"),
            Patch(color=STATE_COLOURS["half_open"], label="half-open (one trial)"),
            Patch(color=STATE_COLOURS["open"], label="open (rejects at once)"),
            Line2D([], [], marker="o", linestyle="", color=OK_COLOUR, label="answered"),
            Line2D([], [], marker="o", linestyle="", color=ERROR_COLOUR, label="error"),
        ]
        columns = len(handles) if len(handles) <= 6 else math.ceil(len(handles) / 2)
        figure.legend(handles=handles, loc="outside lower center", ncols=columns,
                      frameon=False, fontsize=8)  # fmt: skip
        return inline_svg(figure, css_class="timeline")


def _breakers(ax: Any, line: Timeline, end: float) -> None:
    """Faults, the fake upstreams' rules and the breakers' states: one row each, top down."""
    ax.set_title("Faults, and the circuit breakers' states")
    rows: list[tuple[str, list[tuple[float, float, str, str]]]] = []
    for name in dict.fromkeys(name for name, _, _ in line.faults):
        spans = [(b, (e if e is not None else b) - b, "", FAULT_BAR)
                 for n, b, e in line.faults if n == name]  # fmt: skip
        rows.append((f"fault {name}", spans))
    for label in dict.fromkeys(label for label, _, _ in line.rules):
        spans = [(b, e - b, "", RULE_BAR) for n, b, e in line.rules if n == label]
        rows.append((label, spans))
    for name in sorted(line.breakers):
        points = line.breakers[name]
        spans = [
            (t, (points[i + 1][0] if i + 1 < len(points) else end) - t, state,
             STATE_COLOURS.get(state, "#999999"))
            for i, (t, state) in enumerate(points)
        ]  # fmt: skip
        rows.append((f"breaker {name}", spans))
    for index, (_, spans) in enumerate(rows):
        y = len(rows) - 1 - index
        for began, width, state, colour in spans:
            if width <= 0:  # a moment (a process killed): a tick, not a bar
                ax.plot([began, began], [y - 0.35, y + 0.35], color=ERROR_COLOUR, linewidth=2)
                continue
            ax.broken_barh([(began, width)], (y - 0.35, 0.7), color=colour)
            if state and width > end * 0.06:
                ax.text(began + width / 2, y, state.replace("_", "-"), ha="center",
                        va="center", color="white", fontsize=8)  # fmt: skip
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    ax.tick_params(axis="y", length=0)
    if not rows:
        _nothing(ax, "no fault or breaker status seen")


def _latency(ax: Any, line: Timeline) -> None:
    ax.set_title("Public API: latency of each sample (ms)")
    if not line.public:
        _nothing(ax, "no public API samples recorded")
        return
    ok = [(t, ms) for t, ms, good in line.public if good]
    bad = [(t, ms) for t, ms, good in line.public if not good]
    if ok:
        ax.scatter(*zip(*ok, strict=True), s=6, color=OK_COLOUR, linewidths=0)
    if bad:
        ax.scatter(*zip(*bad, strict=True), s=10, color=ERROR_COLOUR, linewidths=0)
    _log_if_wide(ax, [ms for _, ms, _ in line.public])


def _errors(ax: Any, line: Timeline, end: float) -> None:
    width = next((w for w in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0) if w >= end / 40), 30.0)
    ax.set_title(f"Public API: share of samples that failed, per {width:g} s (%)")
    ax.set_ylim(0, 105)
    ax.set_yticks([0, 50, 100])
    if not line.public:
        _nothing(ax, "no public API samples recorded")
        return
    bins = math.ceil(end / width) + 1
    total, failed = [0] * bins, [0] * bins
    for t, _, good in line.public:
        index = min(max(int(t / width), 0), bins - 1)
        total[index] += 1
        failed[index] += 0 if good else 1
    shares = [100 * f / n if n else 0.0 for f, n in zip(failed, total, strict=True)]
    starts = [i * width for i in range(bins)]
    ax.bar(starts, shares, width=width * 0.92, align="edge", color=ERROR_COLOUR)
    if not any(failed):
        ax.text(0.99, 0.5, "no errors", transform=ax.transAxes, ha="right", va="center",
                color="#2e7d4f")  # fmt: skip


def _imports(ax: Any, line: Timeline) -> None:
    ax.set_title("Imports: latency of each (ms), by answer")
    if not line.imports:
        _nothing(ax, "no imports in this scenario")
        return
    groups: dict[str, list[tuple[float, float]]] = {}
    for t, ms, status in line.imports:
        groups.setdefault(_answer(status), []).append((t, ms))
    colours = {"201/200 imported": "#2e9d57", "503 rejected (breaker/db)": "#e0a526",
               "504 out of time": "#8e44ad", "other error": ERROR_COLOUR,
               "no answer": "#333333"}  # fmt: skip
    for label, points in sorted(groups.items()):
        ax.scatter(*zip(*points, strict=True), s=12, color=colours[label], linewidths=0,
                   label=f"{label} ({len(points)})")  # fmt: skip
    # Above the panel, right of its title: inside it would hide the slowest imports.
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False,
              ncols=len(groups), borderaxespad=0.0, handletextpad=0.2)  # fmt: skip
    _log_if_wide(ax, [ms for _, ms, _ in line.imports])


def _answer(status: int | None) -> str:
    if status in (200, 201):
        return "201/200 imported"
    if status == 503:
        return "503 rejected (breaker/db)"
    if status == 504:
        return "504 out of time"
    if status is None:
        return "no answer"
    return "other error"


def _log_if_wide(ax: Any, values: list[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / max(min(positive), 0.1) > 50:
        ax.set_yscale("log")


def _nothing(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")
    ax.set_yticks([])
