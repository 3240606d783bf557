"""How task runs ended: per time bucket, and in total with the failures a retry recovered."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import and_, exists, func, select

from notebooks.reliability.queries.reader import Reader, epochs
from notebooks.reliability.sql import RUNS, count_if
from notebooks.reliability.timeutil import UTC_DTYPE


class Runs(Reader):
    """Run outcomes (empty answers when the database has no runs table)."""

    def run_outcomes(self, bucket: int) -> pd.DataFrame:
        """Runs per time bucket (by `started_at`), `trigger` and `outcome`: `bucket`,
        `trigger`, `outcome`, `runs`. Empty when the database has no runs table."""
        if not self.has_runs:
            return _typed([], ["bucket", "trigger", "outcome", "runs"])
        r, d = RUNS.c, self.dialect
        key = d.bucket(r.started_at, int(bucket)).label("b")
        s = (
            select(key, r.trigger.label("trg"), r.outcome, func.count().label("n"))
            .where(*self._within(r.started_at))
            .group_by("b", r.trigger, r.outcome)
            .subquery("s")
        ).c
        rows = self._rows(
            select(d.epoch(s.b), s.trg, s.outcome, s.n).order_by(s.b, s.trg, s.outcome)
        )
        frame = pd.DataFrame(rows, columns=["bucket", "trigger", "outcome", "runs"])
        return _typed(frame.assign(bucket=epochs(frame["bucket"])))

    def run_totals(self) -> pd.DataFrame:
        """Runs per `task_type`, `trigger` and `outcome` over the window, with the failures
        whose first run failed and a later retry succeeded (`recovered`, on the initial
        failure rows)."""
        columns = ["task_type", "trigger", "outcome", "runs", "recovered"]
        if not self.has_runs:
            return _typed([], columns)
        i, r = RUNS.alias("i").c, RUNS.alias("r").c
        retried = exists().where(r.failure_id == i.failure_id, r.outcome == "success")
        recovered = and_(i.outcome == "failure", i.failure_id.is_not(None), retried)
        groups = (i.task_type, i.trigger, i.outcome)
        rows = self._rows(
            select(*groups, func.count(), count_if(recovered))
            .where(*self._within(i.started_at))
            .group_by(*groups)
            .order_by(*groups)
        )
        return _typed(rows, columns)


_TYPES = {"bucket": UTC_DTYPE, "runs": "int64", "recovered": "int64"}


def _typed(rows: pd.DataFrame | list[Any], columns: list[str] | None = None) -> pd.DataFrame:
    """Rows (or a frame) typed: times aware UTC, counts int64, the rest text."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=columns)
    return frame.astype({c: _TYPES.get(str(c), "str") for c in frame.columns})
