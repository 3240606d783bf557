"""Timestamps in any form to aware UTC, time buckets, durations for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notebooks.reliability.errors import InputError, MalformedRowError
from notebooks.reliability.timeutil import (
    as_instant,
    bucket_label,
    bucket_seconds,
    choose_bucket,
    describe_seconds,
    utc_series,
)


def labels(n: int) -> pd.Series:
    return pd.Series([f"record {i}" for i in range(1, n + 1)])


@given(
    when=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    offset=st.integers(-14 * 60, 14 * 60),
    style=st.sampled_from(["naive", "space", "Z", "offset", "datetime-naive", "datetime-aware"]),
)
def test_any_form_becomes_the_same_utc_instant(when: datetime, offset: int, style: str) -> None:
    utc = when.replace(tzinfo=UTC)
    zone = timezone(timedelta(minutes=offset))
    value: object = {
        "naive": when.isoformat(),
        "space": when.isoformat(sep=" "),
        "Z": when.isoformat() + "Z",
        "offset": utc.astimezone(zone).isoformat(),
        "datetime-naive": when,
        "datetime-aware": utc.astimezone(zone),
    }[style]
    parsed = utc_series(pd.Series([value], dtype=object), source="s", column="t", labels=labels(1))
    assert parsed.iloc[0] == pd.Timestamp(utc)
    assert str(parsed.dtype) == "datetime64[us, UTC]"


def test_an_all_null_object_column_is_all_nat() -> None:
    values = pd.Series([None, None, None], dtype=object)
    parsed = utc_series(values, source="s", column="resolved_at", labels=labels(3))
    assert parsed.isna().all()
    assert str(parsed.dtype) == "datetime64[us, UTC]"


def test_null_texts_are_missing_values() -> None:
    values = pd.Series(["", "\\N", "NULL", "NaT", "2026-11-30 10:00:00"], dtype=object)
    parsed = utc_series(values, source="s", column="t", labels=labels(5))
    assert parsed.isna().tolist() == [True, True, True, True, False]


def test_a_value_that_is_not_a_time_is_named() -> None:
    values = pd.Series(["2026-11-30 10:00:00", "next tuesday"], dtype=object)
    with pytest.raises(MalformedRowError) as caught:
        utc_series(values, source="f.csv", column="created_at", labels=labels(2))
    assert str(caught.value) == "f.csv record 2: created_at 'next tuesday' is not a timestamp"


def test_typed_columns_pass_through() -> None:
    naive = pd.Series(pd.to_datetime(["2026-11-30 10:00:00"]))
    aware = pd.Series(pd.to_datetime(["2026-11-30 12:00:00+02:00"]))
    assert utc_series(naive, source="s", column="t", labels=labels(1)).iloc[0] == pd.Timestamp(
        "2026-11-30 10:00:00", tz="UTC"
    )
    assert utc_series(aware, source="s", column="t", labels=labels(1)).iloc[0] == pd.Timestamp(
        "2026-11-30 10:00:00", tz="UTC"
    )


def test_as_instant() -> None:
    assert as_instant("") is None
    assert as_instant(None) is None
    assert as_instant("2026-11-30T10:00") == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert as_instant("2026-11-30T12:00+02:00") == datetime(2026, 11, 30, 10, tzinfo=UTC)
    with pytest.raises(InputError, match="since: 'soon' is not an ISO-8601 time"):
        as_instant("soon", name="since")


@given(span=st.integers(0, 10**8))
def test_choose_bucket_gives_at_most_sixty_buckets_when_it_can(span: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    width = choose_bucket(start, start + timedelta(seconds=span))
    assert width >= 1
    assert span / width <= 60 or width == 604800


def test_bucket_seconds() -> None:
    assert bucket_seconds("1h", start=None, end=None) == 3600
    assert bucket_seconds("15min", start=None, end=None) == 900
    assert bucket_seconds("1d", start=None, end=None) == 86400
    assert bucket_seconds("30s", start=None, end=None) == 30
    assert bucket_seconds(120, start=None, end=None) == 120
    assert bucket_seconds("auto", start=None, end=None) == 1
    for bad in ("0", "soon", 0, "1 fortnight"):
        with pytest.raises(InputError):
            bucket_seconds(bad, start=None, end=None)


def test_describe_seconds_and_bucket_label() -> None:
    assert describe_seconds(0.25) == "250 ms"
    assert describe_seconds(12.5) == "12.5 s"
    assert describe_seconds(300) == "5.0 min"
    assert describe_seconds(7200) == "2.0 h"
    assert describe_seconds(3 * 86400) == "3.0 d"
    assert describe_seconds(None) == "n/a"
    assert describe_seconds(float("nan")) == "n/a"
    assert bucket_label(3600) == "1 h"
    assert bucket_label(900) == "15 min"
    assert bucket_label(7) == "7 s"
