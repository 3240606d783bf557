"""The report's figures: matplotlib drawings returned as inline SVG text.

Every figure has its time axis in seconds from the start of the run, the phases of the load
shape marked (the outage, when BGG is down, shaded), labelled axes with units, and its legend
above the plots rather than over the data. Text stays text in the SVG (`svg.fonttype: none`),
so the page's own font draws it and the files stay small; a fixed hash salt per figure keeps
the SVG ids of one figure apart from another's on the same page and the output reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from chaos.svg import inline_svg
from loadtests.history import Series

OUTAGE_COLOUR = "#f6c9c4"
PERCENTILE_STYLE = {"p50": "#74a9cf", "p95": "#2b8cbe", "p99": "#023858"}
REQUESTS_COLOUR = "#238b45"
FAILURES_COLOUR = "#d62728"
USERS_COLOUR = "#555555"
TARGET_COLOUR = "#e6550d"
MAX_PHASE_NAMES = 8
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


def _style(salt: str) -> dict[Any, Any]:
    return {**_RC, "svg.hashsalt": salt}


def _mark_phases(axes: Axes, phases: Sequence[Mapping[str, Any]], *, names: bool) -> None:
    """Shade the phases with BGG down; a thin line at every other phase boundary."""
    for phase in phases:
        start, end = float(phase["start_s"]), float(phase["end_s"])
        if phase.get("bgg") == "down":
            axes.axvspan(start, end, color=OUTAGE_COLOUR, alpha=0.6, lw=0, zorder=0)
        elif start > 0:
            axes.axvline(start, color="#bbbbbb", lw=0.8, ls=":", zorder=0)
        if names:
            axes.annotate(
                str(phase["name"]),
                xy=((start + end) / 2, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=9,
                color="#333333",
            )


def _outage_handle(phases: Sequence[Mapping[str, Any]]) -> list[Patch]:
    if any(phase.get("bgg") == "down" for phase in phases):
        return [Patch(color=OUTAGE_COLOUR, alpha=0.6, label="BGG down (outage)")]
    return []


def _x_limit(series: Sequence[Series], phases: Sequence[Mapping[str, Any]]) -> float:
    ends = [float(phase["end_s"]) for phase in phases]
    ends += [s.seconds[-1] for s in series if s.seconds]
    return max([*ends, 1.0])


def _percentiles(axes: Axes, series: Series) -> None:
    for key, colour in PERCENTILE_STYLE.items():
        values = [float("nan") if v is None else v for v in series.percentiles[key]]
        axes.plot(series.seconds, values, color=colour, lw=1.6, marker=".", ms=3, label=key)
    axes.set_ylabel("response time (ms)")
    axes.set_ylim(bottom=0)


def _per_second(axes: Axes, series: Series, *, failures: bool) -> None:
    values = series.failures_per_s if failures else series.requests_per_s
    colour = FAILURES_COLOUR if failures else REQUESTS_COLOUR
    label = "failures/s" if failures else "requests/s"
    if values:
        # above the shading (a patch, as the stairs are), no drop to zero at either end
        axes.stairs(
            values, series.edges(), color=colour, lw=1.6, label=label, baseline=None, zorder=3
        )
    axes.set_ylabel(label.replace("/s", " per second"))
    # a run without failures shows its zero line at the bottom of a 0-1 scale, not squashed
    axes.set_ylim(0, max([*values, 1.0]) * 1.1)


def _legend(figure: Figure, axes: Sequence[Axes], phases: Sequence[Mapping[str, Any]]) -> None:
    handles = [handle for ax in axes for handle in ax.get_legend_handles_labels()[0]]
    handles += _outage_handle(phases)
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0),
                  ncol=len(handles), frameon=False)  # fmt: skip


def _margins(figure: Figure, *, left: float, bottom: float, top: float, **space: float) -> None:
    """Fixed margins in inches: a layout engine would measure every label of every figure
    twice, and these figures always have the same labels."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=left / width, right=1 - 0.15 / width, bottom=bottom / height,
                           top=1 - top / height, **space)  # fmt: skip


def overview(total: Series, phases: Sequence[Mapping[str, Any]], salt: str = "overview") -> str:
    """Users, requests and failures per second, and response times of all requests."""
    with mpl.rc_context(_style(salt)):
        figure = Figure(figsize=(10, 8))
        _margins(figure, left=0.8, bottom=0.55, top=0.6, hspace=0.15)
        panels = figure.subplots(4, 1, sharex=True, height_ratios=(0.8, 1.2, 0.9, 1.5))
        users, requests, failures, times = panels
        for axes in panels:
            # names over more phases than this would run into each other: the table has them
            _mark_phases(axes, phases, names=axes is users and len(phases) <= MAX_PHASE_NAMES)
        users.plot(
            total.seconds,
            total.users,
            color=USERS_COLOUR,
            lw=1.6,
            drawstyle="steps-pre",
            label="users",
        )
        users.set_ylabel("users")
        users.yaxis.set_major_locator(MaxNLocator(integer=True))
        users.set_ylim(0, max([*total.users, 1]) * 1.15)
        _per_second(requests, total, failures=False)
        _per_second(failures, total, failures=True)
        _percentiles(times, total)
        times.set_xlabel("seconds from the start of the run")
        times.set_xlim(0, _x_limit([total], phases))
        _legend(figure, panels, phases)
        return inline_svg(figure)


def endpoint(
    series: Series,
    phases: Sequence[Mapping[str, Any]],
    *,
    salt: str,
    duration: float | None = None,
    target: tuple[str, float] | None = None,
) -> str:
    """One endpoint: response-time percentiles, requests per second and failures per second,
    side by side; `target` (label, ms) is drawn as a line when it is within sight of the data."""
    with mpl.rc_context(_style(salt)):
        figure = Figure(figsize=(10, 2.9))
        _margins(figure, left=0.7, bottom=0.55, top=0.45, wspace=0.32)
        panels = figure.subplots(1, 3, sharex=True, width_ratios=(1.4, 1, 1))
        times, requests, failures = panels
        for axes in panels:
            _mark_phases(axes, phases, names=False)
            axes.set_xlabel("seconds from the start")
        _percentiles(times, series)
        highest = max([v for values in series.percentiles.values() for v in values if v] or [0])
        # a target far above the data would flatten it to the axis: then only the caption has it
        if target is not None and target[1] <= max(highest * 10, 1.0):
            times.axhline(target[1], color=TARGET_COLOUR, lw=1.2, ls="--", label=target[0])
            times.set_ylim(0, max(times.get_ylim()[1], target[1] * 1.1))
        _per_second(requests, series, failures=False)
        _per_second(failures, series, failures=True)
        times.set_xlim(0, max(_x_limit([series], phases), duration or 0.0))
        _legend(figure, panels, phases)
        return inline_svg(figure)
