"""Small display helpers for the notebooks: notes, "not available" cells, readable tables."""

from __future__ import annotations

import io
from collections.abc import Iterable

import pandas as pd
from IPython.display import HTML, Image, Markdown, display
from matplotlib.figure import Figure

from notebooks.reliability.timeutil import describe_seconds


def png(figure: Figure, *, dpi: int = 100) -> bytes:
    """A figure rendered as PNG bytes (Agg, whatever backend is active)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


#: How every table says "no value" (instead of a mix of NaN, None, NaT, <NA> and n/a).
NONE = "—"
_NONE_TEXTS = frozenset({"", "n/a", "nan", "NaN", "None", "NaT", "<NA>"})


def _cell(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return NONE
    if isinstance(value, float) and value != value:  # NaN
        return NONE
    if isinstance(value, str) and value.strip() in _NONE_TEXTS:
        return NONE
    if isinstance(value, float):
        return f"{value:,.4g}"
    return value


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as a person reads it: every missing value the same `NONE`, floats to four
    significant digits, a fresh 0..n index (which `table` does not show)."""
    out = frame.reset_index(drop=True).astype(object)
    for column in out.columns:
        out[column] = out[column].map(_cell)
    return out


def table(frame: pd.DataFrame) -> HTML:
    """A frame as an HTML table without the index column, text never cut short."""
    with pd.option_context("display.max_colwidth", None):
        html = clean(frame).to_html(index=False, border=0, classes="dataframe report-table")
    return HTML(html)  # type: ignore[no-untyped-call]


def _image(figure: Figure) -> object:
    return Image(data=png(figure), format="png")  # type: ignore[no-untyped-call]


def show(*objects: object) -> None:
    """Display objects in the notebook's output; figures as PNG images (embedded in the
    notebook and its HTML export), frames as tables (`table`), Markdown as text."""
    shown = [
        _image(o) if isinstance(o, Figure) else table(o) if isinstance(o, pd.DataFrame) else o
        for o in objects
    ]
    display(*shown)  # type: ignore[no-untyped-call]


def note(text: str) -> None:
    """Show Markdown text."""
    show(Markdown(text))  # type: ignore[no-untyped-call]


def not_available(what: str, how: str) -> None:
    """Say that a section has no data, and how to get it."""
    note(f"**Not available:** {what}. {how}")


def percent(frame: pd.DataFrame, columns: Iterable[str], digits: int = 1) -> pd.DataFrame:
    """`frame` with `columns` (shares 0..1) shown as percentages."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.{digits}%}")
    return out


def durations(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """`frame` with `columns` (seconds) shown for people (`850 ms`, `3.2 min`)."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].map(lambda v: describe_seconds(None if pd.isna(v) else float(v)))
    return out


def times(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """`frame` with timestamp `columns` as `2026-11-30 04:31:30 UTC` text."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].map(
            lambda v: "" if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S UTC")
        )
    return out
