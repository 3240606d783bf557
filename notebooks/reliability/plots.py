"""Plotting helpers: each returns a matplotlib `Figure` (no pyplot state, no backend needed).

A notebook shows a returned figure when it is a cell's last value (the inline backend renders
it as PNG, which nbconvert embeds in the HTML); tests and scripts can `savefig` it. Times are
drawn in UTC; outage windows (a breaker not closed) are shaded on every timeline they apply
to. A figure with nothing to draw says so instead of showing empty axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from notebooks.reliability.timeutil import bucket_label, describe_seconds

WIDE = (9.0, 3.6)
COLORS = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)
CLASS_COLORS = {"transient": "#4C72B0", "permanent": "#C44E52"}
BREAKER_COLORS = {"BGG API": "#C44E52", "Image CDN": "#DD8452"}
PASS_COLORS = {True: "#55A868", False: "#C44E52", None: "#8C8C8C"}


def figure(size: tuple[float, float] = WIDE) -> tuple[Figure, Axes]:
    """A new figure with one axes, laid out so labels fit."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def empty_figure(message: str, *, title: str = "") -> Figure:
    """A small figure that says there is nothing to draw, and why."""
    fig, ax = figure((9.0, 1.4))
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        fontsize=11,
        color="#555555",
        transform=ax.transAxes,
    )
    if title:
        ax.set_title(title)
    return fig


def naive_utc(values: pd.Series | pd.Index) -> np.ndarray:
    """Aware timestamps as naive UTC `datetime64` for matplotlib."""
    series = pd.Series(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(series.to_numpy(dtype="datetime64[us]"))


def time_format(start: datetime, end: datetime) -> tuple[str, str]:
    """How ticks between `start` and `end` read, and the axis label: every tick a whole time
    (`11:28:45`, never a bare `45` beside a date in the corner), the date in the label when the
    span is within one day."""
    span = (end - start).total_seconds()
    if start.date() == end.date():
        ticks = "%H:%M:%S" if span < 600 else "%H:%M"
        return ticks, f"time (UTC) on {start:%Y-%m-%d}"
    if span < 3 * 86400:
        return "%m-%d %H:%M", "time (UTC)"
    return "%Y-%m-%d", "date (UTC)"


def _time_axis(ax: Axes) -> None:
    """Ticks that are whole times, and a label with the unit (UTC) and the date."""
    low, high = ax.get_xlim()
    start, end = (mdates.num2date(v, tz=UTC) for v in (low, high))  # type: ignore[no-untyped-call]
    ticks, label = time_format(start, end)
    locator = mdates.AutoDateLocator(minticks=4, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter(ticks, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel(label)


def _legend(ax: Axes, **kwargs: Any) -> None:
    """The legend to the right of the plot, never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


def shade_windows(ax: Axes, windows: pd.DataFrame | None, *, label: bool = True) -> None:
    """Shade each outage window (`chaos.outage_windows`), coloured by breaker."""
    if windows is None or windows.empty:
        return
    seen: set[str] = set()
    starts = naive_utc(windows["start"])
    ends = naive_utc(windows["end"])
    for breaker, start, end in zip(windows["breaker"], starts, ends, strict=True):
        name = str(breaker)
        color = BREAKER_COLORS.get(name, "#8C8C8C")
        text = f"{name} breaker open" if label and name not in seen else None
        ax.axvspan(
            start,
            max(end, start + np.timedelta64(500, "ms")),
            color=color,
            alpha=0.15,
            label=text,
            linewidth=0,
        )
        seen.add(name)


def stacked_bars(
    frame: pd.DataFrame,
    *,
    time: str,
    group: str,
    value: str,
    bucket: int,
    title: str,
    ylabel: str,
    windows: pd.DataFrame | None = None,
) -> Figure:
    """Bars per time bucket stacked by `group` (e.g. failures by task type)."""
    if frame.empty:
        return empty_figure("no data in this window", title=title)
    table = frame.pivot_table(index=time, columns=group, values=value, aggfunc="sum", fill_value=0)
    fig, ax = figure()
    x = naive_utc(table.index)
    width = np.timedelta64(int(bucket * 1_000_000 * 0.9), "us")
    bottom = np.zeros(len(table))
    for i, column in enumerate(table.columns):
        heights = table[column].to_numpy(dtype=float)
        ax.bar(
            x,
            heights,
            width=width,
            bottom=bottom,
            align="edge",
            label=str(column),
            color=COLORS[i % len(COLORS)],
        )
        bottom += heights
    shade_windows(ax, windows)
    _time_axis(ax)
    _whole_numbers(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (per {bucket_label(bucket)})")
    _legend(ax)
    return fig


def hbar(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    colors: Sequence[str] | None = None,
    legend: dict[str, str] | None = None,
) -> Figure:
    """Horizontal bars, largest on top (top-N lists)."""
    if len(values) == 0:
        return empty_figure("nothing to show", title=title)
    height = max(1.8, 0.35 * len(values) + 1.0)
    fig, ax = figure((9.0, height))
    positions = np.arange(len(values))[::-1]
    ax.barh(positions, list(values), color=list(colors) if colors else COLORS[0])
    ax.set_yticks(positions, [_short(str(label), 60) for label in labels], fontsize=8)
    _whole_numbers(ax, "x")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for position, number in zip(positions, values, strict=True):
        ax.text(number, position, f" {number:,.0f}", va="center", fontsize=8)
    if legend:
        from matplotlib.patches import Patch

        _legend(ax, handles=[Patch(color=c, label=n) for n, c in legend.items()])
    return fig


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_types_chart(error_types: pd.DataFrame) -> Figure:
    """Failures per error type, coloured transient / permanent."""
    colors = [CLASS_COLORS[c] for c in error_types.get("failure_class", [])]
    return hbar(
        list(error_types["error_type"]),
        list(error_types["failures"]),
        title="Failures by error type",
        xlabel="failures",
        colors=colors or None,
        legend=CLASS_COLORS,
    )


def duration_bins_chart(
    bins: pd.DataFrame, *, title: str, xlabel: str, ylabel: str = "failures"
) -> Figure:
    """Counts per duration bin (ages, times to resolution); `xlabel` names the duration."""
    if bins["failures"].sum() == 0:
        return empty_figure("no failures to show", title=title)
    fig, ax = figure()
    ax.bar(bins["label"], bins["failures"], color=COLORS[0])
    _whole_numbers(ax)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=8)
    return fig


def quantile_chart(quantiles: pd.Series, *, title: str, xlabel: str) -> Figure:
    """A distribution from its quantiles (0..1): share of rows at or below each duration, log
    x, with p50 / p90 / p99 marked."""
    if quantiles.empty:
        return empty_figure("no values to show", title=title)
    fig, ax = figure()
    seconds = np.maximum(quantiles.to_numpy(dtype=float), 1e-3)
    ax.step(seconds, quantiles.index.to_numpy(dtype=float), where="post", color=COLORS[0])
    ax.set_xscale("log")
    # 1-2-5 steps, each labelled (`500 ms`, `1.0 s`, `2.0 s`, `5.0 s`): a log axis with a
    # single `10.0 s` on it says nothing about the rest of the curve.
    low, high = float(seconds.min()), float(seconds.max())
    ax.set_xlim(low / 1.5, high * 1.5)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: describe_seconds(v)))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda _v, _pos: ""))
    for q, style in ((0.5, ":"), (0.9, "--"), (0.99, "-.")):
        value = float(np.interp(q, quantiles.index.to_numpy(dtype=float), seconds))
        ax.axvline(
            value,
            color="#555555",
            linestyle=style,
            linewidth=1,
            label=f"p{int(q * 100)} = {describe_seconds(value)}",
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share at or below")
    ax.set_title(title)
    _legend(ax)
    return fig


def _whole_numbers(axis: Axes, which: str = "y") -> None:
    """Counts on an axis: whole-number ticks only."""
    target = axis.yaxis if which == "y" else axis.xaxis
    target.set_major_locator(MaxNLocator(integer=True))


def success_rate_chart(
    success: pd.DataFrame, *, target: float, bucket: int, windows: pd.DataFrame | None = None
) -> Figure:
    """Task success rate per bucket against the target, with the runs per bucket behind it."""
    title = "Background task success (first runs)"
    if success.empty:
        return empty_figure("no background task runs in this window", title=title)
    grid = pd.date_range(success["bucket"].min(), success["bucket"].max(), freq=f"{bucket}s")
    success = success.set_index("bucket").reindex(grid).rename_axis("bucket").reset_index()
    success["runs"] = success["runs"].fillna(0)
    fig, ax = figure()
    x = naive_utc(success["bucket"])
    width = np.timedelta64(int(bucket * 1_000_000 * 0.9), "us")
    runs_ax = ax.twinx()
    _whole_numbers(runs_ax)
    runs_ax.bar(x, success["runs"], width=width, align="edge", color="#DDDDDD", label="runs")
    runs_ax.set_ylabel("runs")
    ax.set_zorder(runs_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    centres = x + width // 2
    ax.plot(
        centres, success["success_rate"] * 100, marker="o", color=COLORS[0], label="success rate"
    )
    missed = success["meets_target"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    ax.scatter(
        centres[~missed],
        success["success_rate"].to_numpy()[~missed] * 100,
        color=COLORS[3],
        zorder=5,
        label="below target",
    )
    ax.axhline(
        target * 100, color=COLORS[3], linestyle="--", linewidth=1, label=f"target {target:.0%}"
    )
    shade_windows(ax, windows)
    ax.set_ylim(-2, 102)
    ax.set_ylabel("success (%)")
    _time_axis(ax)
    ax.set_title(f"{title} per {bucket_label(bucket)}")
    handles, labels = ax.get_legend_handles_labels()
    bars, bar_labels = runs_ax.get_legend_handles_labels()
    # Outside, right of the runs axis (whose ticks sit where an axes legend would go).
    fig.legend(
        handles + bars, labels + bar_labels, loc="outside right upper", fontsize=8, frameon=False
    )
    return fig


def pie_share(frame: pd.DataFrame, *, label: str, value: str, title: str) -> Figure:
    """A share chart (horizontal 100 % bar, easier to read than a pie)."""
    total = float(frame[value].sum())
    if total == 0:
        return empty_figure("nothing to show", title=title)
    fig, ax = figure((9.0, 1.8))
    left = 0.0
    for i, (name, number) in enumerate(zip(frame[label], frame[value], strict=True)):
        share = float(number) / total
        ax.barh(
            [0],
            [share],
            left=left,
            color=COLORS[i % len(COLORS)],
            label=f"{name}: {number:,} ({share:.0%})",
        )
        left += share
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    return fig


def spikes_chart(spikes: pd.DataFrame, *, bucket: int, threshold: float) -> Figure:
    """Events per bucket with the rolling baseline, spikes marked and named."""
    title = "Sentry events and spikes"
    if spikes.empty:
        return empty_figure("no events", title=title)
    fig, ax = figure()
    x = naive_utc(spikes["bucket"])
    width = np.timedelta64(int(bucket * 1_000_000 * 0.9), "us")
    ax.bar(x, spikes["events"], width=width, align="edge", color=COLORS[0], label="events")
    ax.plot(
        x + width // 2,
        spikes["baseline"],
        color="#555555",
        linewidth=1,
        label="rolling mean of the buckets before",
    )
    hits = spikes[spikes["spike"]]
    if len(hits):
        hx = naive_utc(hits["bucket"]) + width // 2
        ax.scatter(
            hx, hits["events"], color=COLORS[3], zorder=5, label=f"spike (z >= {threshold:g})"
        )
        for xi, yi, name in zip(hx, hits["events"], hits["top_issue"], strict=True):
            ax.annotate(
                _short(str(name), 40),
                (xi, yi),
                textcoords="offset points",
                xytext=(-4, 6),
                ha="right",
                fontsize=7,
                color=COLORS[3],
            )
    _time_axis(ax)
    ax.set_ylabel("events")
    ax.set_title(f"{title} (per {bucket_label(bucket)})")
    _legend(ax)
    return fig


def grouped_bars(
    frame: pd.DataFrame, *, category: str, values: Sequence[str], title: str, ylabel: str
) -> Figure:
    """Bars of several measures per category (e.g. events and issues per release)."""
    if frame.empty:
        return empty_figure("nothing to show", title=title)
    fig, ax = figure()
    positions = np.arange(len(frame))
    width = 0.8 / len(values)
    for i, column in enumerate(values):
        ax.bar(
            positions + i * width,
            frame[column].astype(float),
            width=width,
            label=column,
            color=COLORS[i % len(COLORS)],
        )
    ax.set_xticks(
        positions + width * (len(values) - 1) / 2,
        [_short(str(c), 20) for c in frame[category]],
        fontsize=8,
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend(ax)
    return fig


def target_bars(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    target: float,
    title: str,
    unit: str,
    lower_is_better: bool = True,
) -> Figure:
    """Measured values against one target line, each bar coloured pass / fail."""
    present = [
        (str(lab), float(v))
        for lab, v in zip(labels, values, strict=True)
        if v is not None and not np.isnan(v)
    ]
    if not present:
        return empty_figure("not measured", title=title)
    fig, ax = figure((9.0, 3.0))
    names = [p[0] for p in present]
    numbers = [p[1] for p in present]
    passed = [(n < target) if lower_is_better else (n > target) for n in numbers]
    ax.bar(names, numbers, color=[PASS_COLORS[p] for p in passed])
    if min(numbers) > 0 and target / max(numbers) > 20:
        ax.set_yscale("log")  # values far below the target still show
    ax.axhline(
        target, color="#555555", linestyle="--", linewidth=1, label=f"target {target:g} {unit}"
    )
    for i, number in enumerate(numbers):
        ax.text(i, number, f"{number:,.3g} {unit}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=8)
    _legend(ax)
    return fig


def load_history_chart(history: pd.DataFrame, phases: pd.DataFrame | None = None) -> Figure:
    """A load run over time: requests and failures per second, p95 response time, and the
    outage phase (BGG down) shaded."""
    title = "Load run over time"
    total = history[history["Name"] == "Aggregated"] if "Name" in history else history
    if total.empty:
        return empty_figure("no history rows", title=title)
    fig = Figure(figsize=(9.0, 5.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = naive_utc(total["time"])
    top.plot(x, total["Requests/s"], color=COLORS[0], label="requests/s")
    if "Failures/s" in total:
        top.plot(x, total["Failures/s"], color=COLORS[3], label="failures/s")
    top.set_ylabel("per second")
    for column, color in (("50%", COLORS[2]), ("95%", COLORS[1]), ("99%", COLORS[3])):
        if column in total:
            bottom.plot(
                x,
                pd.to_numeric(total[column], errors="coerce"),
                color=color,
                label=f"p{column.rstrip('%')}",
            )
    bottom.set_ylabel("response time (ms)")
    _legend(bottom)
    if phases is not None and len(phases) and len(total):
        start = total["time"].min()
        for phase in phases.to_dict("records"):
            if phase["bgg"] == "down":
                a = naive_utc(pd.Series([start + pd.Timedelta(seconds=float(phase["start_s"]))]))[0]
                b = naive_utc(pd.Series([start + pd.Timedelta(seconds=float(phase["end_s"]))]))[0]
                for axis in (top, bottom):
                    axis.axvspan(
                        a,
                        b,
                        color=BREAKER_COLORS["BGG API"],
                        alpha=0.12,
                        label="BGG down" if axis is top else None,
                        linewidth=0,
                    )
    _legend(top)
    _time_axis(bottom)
    top.set_title(title)
    return fig


def timeline_chart(faults: pd.DataFrame, windows: pd.DataFrame, *, title: str) -> Figure:
    """Faults switched on and breakers not closed, one row each, on one time axis."""
    if faults.empty and windows.empty:
        return empty_figure("no faults or breaker transitions in the events", title=title)
    rows: list[tuple[str, Any, Any, str]] = []
    ends = [t for t in (faults["end"].max(), windows["end"].max()) if pd.notna(t)]
    last = max(ends) if ends else None
    for fault in faults.to_dict("records"):
        end = fault["end"] if pd.notna(fault["end"]) else (last or fault["start"])
        rows.append(
            (f"fault {fault['fault']} ({fault['scenario']})", fault["start"], end, "#8C8C8C")
        )
    for window in windows.to_dict("records"):
        color = BREAKER_COLORS.get(str(window["breaker"]), COLORS[0])
        rows.append(
            (
                f"{window['breaker']} open ({window['scenario']})",
                window["start"],
                window["end"],
                color,
            )
        )
    fig, ax = figure((9.0, max(2.0, 0.4 * len(rows) + 1.2)))
    for i, (_name, start, end, color) in enumerate(rows):
        a, b = naive_utc(pd.Series([start, end]))
        ax.barh(i, max(b - a, np.timedelta64(200, "ms")), left=a, color=color, height=0.6)
    ax.set_yticks(range(len(rows)), [_short(r[0], 50) for r in rows], fontsize=8)
    ax.invert_yaxis()
    _time_axis(ax)
    ax.set_title(title)
    return fig


def retries_chart(retries: pd.DataFrame) -> Figure:
    """Failures per `retry_count` (attempts made)."""
    labels = [
        "unknown" if pd.isna(r) else f"{int(r)} attempt{'s' if int(r) != 1 else ''}"
        for r in retries["retry_count"]
    ]
    return hbar(
        labels, list(retries["failures"]), title="Failures by attempts made", xlabel="failures"
    )


def games_chart(games: pd.DataFrame) -> Figure:
    """The games with the most failures (title and id; a deleted game has no id)."""
    labels = [
        f"{title} (game {gid})"
        if isinstance(title, str)
        else ("deleted game" if pd.isna(gid) else f"game {gid}")
        for title, gid in zip(games["title"], games["game_id"], strict=True)
    ]
    return hbar(
        labels, list(games["failures"]), title="Games with the most failures", xlabel="failures"
    )
