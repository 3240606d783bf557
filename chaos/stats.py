"""Small statistics over latency samples (milliseconds)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) by the nearest-rank method; None for no values.

    Nearest rank never interpolates below an observed value, so "p99 < 50 ms" is a claim
    about a latency that really happened.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, None when nothing was counted."""
    return None if whole == 0 else part / whole


def rounded(value: float | None, digits: int = 2) -> float | None:
    """`round()` that lets None through (figures may be missing)."""
    return None if value is None else round(value, digits)
