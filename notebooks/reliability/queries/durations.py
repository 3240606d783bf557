"""How old the backlog is and how long resolution takes: counts, bins and quantiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Double, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from notebooks.reliability.queries.reader import Reader, stamps
from notebooks.reliability.sql import DURATION_EDGES, DURATION_LABELS, FAILURES, Time

#: Quantiles returned for durations: 0, 1, ..., 100 % (a whole distribution in 101 numbers).
QUANTILES: tuple[float, ...] = tuple(i / 100 for i in range(101))


class Durations(Reader):
    """The unresolved backlog and the time to resolution."""

    def backlog(self) -> pd.DataFrame:
        """Unresolved failures per `task_type` and `error_type`: `failures`, `oldest`."""
        f, n = FAILURES.c, func.count()
        rows = self._rows(
            select(f.task_type, f.error_type, n, func.min(f.created_at))
            .where(*self._within(f.created_at, self.dialect.unresolved()))
            .group_by(f.task_type, f.error_type)
            .order_by(n.desc(), f.task_type, f.error_type)
        )
        frame = pd.DataFrame(rows, columns=["task_type", "error_type", "failures", "oldest"])
        frame["error_type"] = frame["error_type"].fillna("(none)")
        frame["oldest"] = stamps(frame["oldest"])
        return frame.astype({"task_type": "str", "error_type": "str", "failures": "int64"})

    def backlog_age_bins(self) -> pd.DataFrame:
        """Unresolved failures by age (`now - created_at`) in `DURATION_EDGES` bins (`bin`,
        `label`, `failures`); rows from the future are left out (see `quality`)."""
        return self._distribution("age")[1]

    def backlog_age_quantiles(self) -> pd.Series:
        """Quantiles (0..1 step 0.01) of the unresolved failures' ages in seconds (rows from
        the future left out); empty when nothing is unresolved."""
        return self._distribution("age")[0]

    def resolution_bins(self) -> pd.DataFrame:
        """Resolved failures by time to resolution (`resolved_at - created_at`), binned as
        `backlog_age_bins`; rows resolved "before" they were created are left out."""
        return self._distribution("resolution")[1]

    def resolution_quantiles(self) -> pd.Series:
        """Quantiles (0..1 step 0.01) of the time to resolution in seconds, over resolved
        failures with a `resolved_at` not before `created_at`; empty when there are none."""
        return self._distribution("resolution")[0]

    def _distribution(self, kind: str) -> tuple[pd.Series, pd.DataFrame]:
        """Quantiles and bin counts of ages (`kind="age"`) or times to resolution, from one
        query (PostgreSQL: `percentile_cont` and `COUNT(*) FILTER` in one scan; SQLite: the
        durations read in chunks)."""
        return self._memo(kind, lambda: self._read_distribution(kind))

    def _read_distribution(self, kind: str) -> tuple[pd.Series, pd.DataFrame]:
        f, d = FAILURES.c, self.dialect
        start: Time = f.created_at
        end: Time
        if kind == "age":
            end = self.now
            where = self._within(f.created_at, d.unresolved(), ~(d.time(start) > d.time(end)))
        else:
            end = f.resolved_at
            where = self._within(
                f.created_at, d.resolved(), end.is_not(None), ~(d.time(end) < d.time(start))
            )
        if d.name == "postgresql":
            quantiles = literal(list(QUANTILES), ARRAY(Double))
            ((count, values, *cumulative),) = self._rows(
                select(
                    func.count(),
                    func.percentile_cont(quantiles).within_group(d.interval(start, end)),
                    *(func.count().filter(d.shorter_than(start, end, e)) for e in DURATION_EDGES),
                ).where(*where)
            )
            seconds = [] if values is None else [v.total_seconds() for v in values]
            edges_below = [int(c) for c in cumulative]
            total = int(count)
        else:
            chunks: list[np.ndarray[Any, np.dtype[np.float64]]] = []
            with self._connect() as conn:
                result = conn.execution_options(yield_per=100_000).execute(
                    select(d.seconds_between(start, end)).where(*where)
                )
                for part in result.partitions():
                    chunks.append(np.array([r[0] for r in part], dtype="float64"))
            data = np.concatenate(chunks) if chunks else np.array([], dtype="float64")
            data = np.maximum(data, 0.0)  # julianday() rounding can give -1e-6 for "equal"
            seconds = list(np.quantile(data, QUANTILES, method="linear")) if data.size else []
            edges_below = [int((data < edge).sum()) for edge in DURATION_EDGES]
            total = int(data.size)
        counts = np.diff([0, *edges_below, total]).tolist()
        bins = pd.DataFrame(
            {"bin": range(len(DURATION_LABELS)), "label": list(DURATION_LABELS), "failures": counts}
        ).astype({"bin": "int64", "failures": "int64"})
        quantiles_s = (
            pd.Series(seconds, index=pd.Index(QUANTILES, name="quantile"), name="seconds")
            if seconds
            else pd.Series(dtype="float64", name="seconds")
        )
        return quantiles_s, bins
