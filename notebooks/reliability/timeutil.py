"""Timestamps and time buckets: everything the analysis shows is in UTC.

The service stores naive UTC (`TIMESTAMP` columns); exports carry `Z`, `+02:00` or nothing.
Everything is turned into aware UTC (`datetime64[us, UTC]`) on the way in, so naive and aware
values never meet. A value that is there but is not a time is an error naming its row.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd

from notebooks.reliability.errors import InputError, MalformedRowError

#: The dtype of every timestamp column the loaders return.
UTC_DTYPE: Final = "datetime64[us, UTC]"

#: Bucket widths to choose from, in seconds (1 s up to a week).
BUCKETS: tuple[int, ...] = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
NULL_TEXTS = frozenset({"", "\\N", "NULL", "null", "None", "NaT", "nan", "NaN"})


def null_mask(values: pd.Series) -> pd.Series:
    """True where a value is missing: None, NaN/NaT/NA, or a NULL text (`""`, `\\N`, `NULL`)."""
    texts = [isinstance(v, str) and v.strip() in NULL_TEXTS for v in values]
    mask = values.isna().to_numpy(dtype=bool) | np.array(texts, dtype=bool)
    return pd.Series(mask, index=values.index, dtype=bool)


def first_position(mask: pd.Series) -> int:
    """The position of the first True in a boolean Series (callers check `mask.any()`)."""
    return int(np.argmax(mask.to_numpy(dtype=bool)))


def reject_first(
    bad: pd.Series, values: pd.Series, *, source: str, column: str, labels: pd.Series, problem: str
) -> None:
    """Raise `MalformedRowError` for the first row where `bad` is True, naming its label, the
    column and the value (`at 'soon' is not a timestamp`); nothing when no row is bad."""
    if bad.any():
        first = first_position(bad)
        raise MalformedRowError(
            source, str(labels.iloc[first]), f"{column} {values.iloc[first]!r} {problem}"
        )


def utc_series(values: pd.Series, *, source: str, column: str, labels: pd.Series) -> pd.Series:
    """`values` as aware UTC timestamps; naive values are taken as UTC.

    Accepts ISO-8601 text (with `T` or a space, with `Z`, an offset or nothing), datetimes and
    pandas timestamps. Missing values (None, NaN, empty text, `\\N`, `NULL`) become NaT; any
    other value that is not a time raises `MalformedRowError` naming its row (`labels`, aligned
    with `values`). An all-NULL column (pandas gives it the object dtype) works.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = values.dt.tz_convert("UTC").astype(UTC_DTYPE)
        return converted
    if pd.api.types.is_datetime64_dtype(values.dtype):
        localized: pd.Series = values.dt.tz_localize("UTC").astype(UTC_DTYPE)
        return localized
    missing = null_mask(values)
    cleaned = values.astype(object).where(~missing, None)
    parsed = _parse(cleaned)
    present = ~missing
    bad = present & parsed.isna()
    reject_first(
        bad, values, source=source, column=column, labels=labels, problem="is not a timestamp"
    )
    return parsed


def _parse(values: pd.Series) -> pd.Series:
    """Parse ISO-8601 text and datetimes (a mix of naive and aware is normal in exports)."""
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return pd.Series(parsed, index=values.index).astype(UTC_DTYPE)


def as_instant(
    value: str | datetime | pd.Timestamp | None, *, name: str = "time"
) -> datetime | None:
    """A parameter (`since`, `until`, `now`) as an aware UTC datetime; None or "" stays None.

    Naive values are UTC. Raises `InputError` for text that is not an ISO-8601 time.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise InputError(
            f"{name}: {value!r} is not an ISO-8601 time (e.g. 2026-11-30T04:00Z)"
        ) from None
    if pd.isna(stamp):
        raise InputError(f"{name}: {value!r} is not an ISO-8601 time (e.g. 2026-11-30T04:00Z)")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    result: datetime = stamp.to_pydatetime()
    return result


def naive_utc(value: datetime) -> datetime:
    """An aware datetime as the naive UTC value the database columns hold."""
    return value.astimezone(UTC).replace(tzinfo=None)


def choose_bucket(start: datetime | None, end: datetime | None, *, target: int = 20) -> int:
    """The smallest bucket width in `BUCKETS` giving at most `target` buckets over the span
    (so a chart has bars a person can tell apart, and a day is hours, not seconds)."""
    if start is None or end is None or end <= start:
        return BUCKETS[0]
    span = (end - start).total_seconds()
    for width in BUCKETS:
        if span / width <= target:
            return width
    return BUCKETS[-1]


def bucket_seconds(spec: str | int | float, *, start: datetime | None, end: datetime | None) -> int:
    """A bucket parameter (`"auto"`, `"1h"`, `"1d"`, `"15min"`, `"30s"`, or seconds) in seconds."""
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        if spec >= 1 and math.isfinite(spec):
            return int(spec)
        raise InputError(f"bucket: {spec!r} must be at least 1 second")
    text = str(spec).strip().lower()
    if text == "auto":
        return choose_bucket(start, end)
    if text.isdigit() and int(text) >= 1:
        return int(text)
    match = _SPEC.match(text)
    if match and match.group(2) in _UNITS:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if seconds >= 1:
            return int(seconds)
    raise InputError(
        f"bucket: {spec!r} is not a width: expected auto, 30s, 15min, 1h, 1d or seconds"
    )


def describe_seconds(seconds: float | None) -> str:
    """A duration for people: `850 ms`, `12.5 s`, `3.2 min`, `4.1 h`, `2.0 d`."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    value = abs(seconds)
    sign = "-" if seconds < 0 else ""
    if value < 1:
        return f"{sign}{value * 1000:.0f} ms"
    if value < 120:
        return f"{sign}{value:.1f} s"
    if value < 7200:
        return f"{sign}{value / 60:.1f} min"
    if value < 172800:
        return f"{sign}{value / 3600:.1f} h"
    return f"{sign}{value / 86400:.1f} d"


def bucket_label(seconds: int) -> str:
    """A bucket width for titles: `1 s`, `15 min`, `1 h`, `1 d`."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
