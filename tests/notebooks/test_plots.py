"""Every plot renders (to PNG, on Agg, with no warning), with data and without."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from notebooks.reliability import plots
from notebooks.reliability.show import png
from notebooks.reliability.sql import DURATION_LABELS
from notebooks.reliability.tables import QUANTILES

T0 = pd.Timestamp("2026-11-30 10:00:00", tz="UTC")


def times(*seconds: float) -> pd.Series:
    return pd.Series([T0 + pd.Timedelta(seconds=s) for s in seconds]).astype("datetime64[us, UTC]")


def windows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario": ["g"],
            "breaker": ["BGG API"],
            "start": times(30),
            "end": times(90),
            "duration_s": [60.0],
            "open_ended": [False],
        }
    )


def rendered(figure: Figure) -> bytes:
    assert isinstance(figure, Figure)
    data = png(figure, dpi=30)
    assert data.startswith(b"\x89PNG")
    return data


def test_timelines_with_data_and_shading() -> None:
    over_time = pd.DataFrame(
        {"bucket": times(0, 60, 60), "task_type": ["a", "a", "b"], "failures": [1, 2, 3]}
    )
    rendered(
        plots.stacked_bars(
            over_time,
            time="bucket",
            group="task_type",
            value="failures",
            bucket=60,
            title="t",
            ylabel="y",
            windows=windows(),
        )
    )
    success = pd.DataFrame(
        {
            "bucket": times(0, 120),
            "runs": [10, 4],
            "successes": [10, 2],
            "failures": [0, 2],
            "success_rate": [1.0, 0.5],
            "meets_target": pd.array([True, False], dtype="boolean"),
        }
    )
    rendered(plots.success_rate_chart(success, target=0.95, bucket=60, windows=windows()))


@pytest.mark.parametrize(
    "make",
    [
        lambda: plots.stacked_bars(
            pd.DataFrame({"bucket": [], "g": [], "v": []}),
            time="bucket",
            group="g",
            value="v",
            bucket=60,
            title="t",
            ylabel="y",
        ),
        lambda: plots.hbar([], [], title="t", xlabel="x"),
        lambda: plots.duration_bins_chart(
            pd.DataFrame({"label": list(DURATION_LABELS), "failures": [0] * 10}),
            title="t",
            xlabel="age",
        ),
        lambda: plots.quantile_chart(pd.Series(dtype=float), title="t", xlabel="x"),
        lambda: plots.pie_share(
            pd.DataFrame({"c": ["a"], "n": [0]}), label="c", value="n", title="t"
        ),
        lambda: plots.target_bars(["a"], [None], target=50, title="t", unit="ms"),
        lambda: plots.timeline_chart(
            pd.DataFrame({"start": [], "end": []}),
            pd.DataFrame({"start": [], "end": []}),
            title="t",
        ),
        lambda: plots.empty_figure("nothing"),
    ],
)
def test_nothing_to_draw_says_so(make: object) -> None:
    assert callable(make)
    rendered(make())


def test_distributions_and_bars() -> None:
    quantiles = pd.Series([0.5 + 100 * q**3 for q in QUANTILES], index=QUANTILES)
    rendered(plots.quantile_chart(quantiles, title="t", xlabel="x"))
    bins = pd.DataFrame({"label": list(DURATION_LABELS), "failures": list(range(10))})
    rendered(plots.duration_bins_chart(bins, title="t", xlabel="age"))
    types = pd.DataFrame(
        {
            "error_type": ["ReadTimeout", "ImageNotFound"],
            "failures": [3, 1],
            "failure_class": ["transient", "permanent"],
        }
    )
    rendered(plots.error_types_chart(types))
    retries = pd.DataFrame(
        {"retry_count": pd.array([1, 3, None], dtype="Int64"), "failures": [2, 3, 1]}
    )
    rendered(plots.retries_chart(retries))
    games = pd.DataFrame(
        {
            "game_id": pd.array([1, None], dtype="Int64"),
            "title": ["Brass", None],
            "failures": [4, 2],
        }
    )
    rendered(plots.games_chart(games))
    rendered(plots.target_bars(["a", "b"], [0.2, 120.0], target=300, title="t", unit="s"))
    rendered(plots.target_bars(["a"], [0.2], target=300, title="t", unit="s"))  # log scale
    rendered(
        plots.grouped_bars(
            pd.DataFrame({"r": ["x", "y"], "a": [1, 2], "b": [3, 4]}),
            category="r",
            values=["a", "b"],
            title="t",
            ylabel="n",
        )
    )


def test_spikes_load_and_timeline() -> None:
    spikes = pd.DataFrame(
        {
            "bucket": times(0, 60, 120),
            "events": [1, 0, 9],
            "baseline": [None, 1.0, 0.5],
            "zscore": [None, -1.0, 8.5],
            "spike": [False, False, True],
            "top_issue": [None, None, "X: y"],
            "top_issue_events": pd.array([None, None, 9], dtype="Int64"),
        }
    )
    rendered(plots.spikes_chart(spikes, bucket=60, threshold=3))
    history = pd.DataFrame(
        {
            "time": times(0, 5, 10),
            "Name": ["Aggregated"] * 3,
            "Requests/s": [1.0, 40.0, 42.0],
            "Failures/s": [0.0, 0.1, 0.0],
            "50%": [None, 10, 12],
            "95%": [None, 40, 50],
            "99%": [None, 80, 90],
        }
    )
    phases = pd.DataFrame(
        {
            "name": ["outage"],
            "start_s": [3.0],
            "end_s": [7.0],
            "bgg": ["down"],
            "breaker_at_end": ["open"],
        }
    )
    rendered(plots.load_history_chart(history, phases))
    faults = pd.DataFrame(
        {
            "scenario": ["g"],
            "fault": ["bgg-503"],
            "start": times(20),
            "end": pd.Series([pd.NaT], dtype="datetime64[us, UTC]"),
        }
    )
    rendered(plots.timeline_chart(faults, windows(), title="t"))


def test_figures_can_be_saved(tmp_path: Path) -> None:
    figure = plots.empty_figure("x")
    figure.savefig(tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 0


def test_shade_windows_one_span_per_window_one_label_per_breaker() -> None:
    import matplotlib.colors as mcolors
    import matplotlib.dates as mdates
    from matplotlib.patches import Rectangle

    shaded = pd.DataFrame(
        {
            "breaker": ["BGG API", "Image CDN", "BGG API", "Redis"],
            "start": times(0, 10, 60, 100),
            "end": times(30, 10, 90, 130),  # the CDN window lasted no time at all
        }
    )
    fig, ax = plots.figure()
    plots.shade_windows(ax, shaded)
    spans = ax.patches
    assert len(spans) == 4
    # x extents (matplotlib dates, days) back to seconds after T0.
    origin = mdates.date2num(T0.tz_localize(None).to_pydatetime())  # type: ignore[no-untyped-call]
    extents = []
    for span in spans:
        assert isinstance(span, Rectangle)  # what axvspan draws
        left, width = span.get_x(), span.get_width()
        extents.append(
            (round((left - origin) * 86400, 3), round((left + width - origin) * 86400, 3))
        )
    # A zero-length window is still drawn, half a second wide.
    assert extents == [(0.0, 30.0), (10.0, 10.5), (60.0, 90.0), (100.0, 130.0)]
    colors = [mcolors.to_hex(span.get_facecolor()) for span in spans]
    assert colors == [
        plots.BREAKER_COLORS["BGG API"].lower(),
        plots.BREAKER_COLORS["Image CDN"].lower(),
        plots.BREAKER_COLORS["BGG API"].lower(),
        "#8c8c8c",  # a breaker of no known colour
    ]
    assert all(span.get_alpha() == 0.15 for span in spans)
    _, labels = ax.get_legend_handles_labels()
    assert labels == ["BGG API breaker open", "Image CDN breaker open", "Redis breaker open"]
    rendered(fig)


def test_shade_windows_without_labels_or_windows() -> None:
    _, ax = plots.figure()
    plots.shade_windows(ax, windows(), label=False)
    assert len(ax.patches) == 1
    assert ax.get_legend_handles_labels()[1] == []
    for nothing in (None, windows().iloc[0:0]):
        _, ax = plots.figure()
        plots.shade_windows(ax, nothing)
        assert len(ax.patches) == 0
