"""The failure rows themselves, newest first, for the drill-down (bounded, read in chunks)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import ColumnElement, false, select, true, union_all

from notebooks.reliability.db import FAILURES_TABLE
from notebooks.reliability.frames import FAILURE_COLUMNS, failure_frame
from notebooks.reliability.queries.reader import Reader
from notebooks.reliability.sql import FAILURES


class Drilldown(Reader):
    """Failure rows as `frames.failure_frame` types them."""

    def read_failures(
        self,
        *,
        unresolved_only: bool = False,
        limit: int | None = 100,
        chunk_rows: int = 50_000,
    ) -> pd.DataFrame:
        """Failure rows, newest first, read in chunks of `chunk_rows` (typed as
        `frames.failure_frame` returns them). `limit=None` reads every row of the window."""
        f = FAILURES.c
        columns = [FAILURES.c[name] for name in FAILURE_COLUMNS]
        if self.dialect.name == "postgresql" and limit is not None:
            # Newest first without sorting the table: one index range scan per value of
            # `resolved` on idx_task_failure_resolved (resolved, created_at), merged.
            states: list[ColumnElement[bool]] = [f.resolved == false(), f.resolved.is_(None)]
            if not unresolved_only:
                states.insert(0, f.resolved == true())
            branches = [
                select(*columns)
                .where(*self._within(f.created_at, state))
                .order_by(f.created_at.desc(), f.id.desc())
                .limit(int(limit))
                for state in states
            ]
            s = union_all(*branches).subquery("s")
            query = select(s).order_by(s.c.created_at.desc(), s.c.id.desc()).limit(int(limit))
        else:
            extra = [self.dialect.unresolved()] if unresolved_only else []
            query = (
                select(*columns)
                .where(*self._within(f.created_at, *extra))
                .order_by(f.created_at.desc(), f.id.desc())
            )
            if limit is not None:
                query = query.limit(int(limit))
        frames: list[pd.DataFrame] = []
        with self._connect() as conn:
            result = conn.execution_options(yield_per=chunk_rows).execute(query)
            for part in result.partitions():
                raw = pd.DataFrame([tuple(r) for r in part], columns=list(FAILURE_COLUMNS))
                frames.append(failure_frame(raw, source=f"{self.source}: {FAILURES_TABLE}"))
        if not frames:
            return failure_frame(
                pd.DataFrame({c: pd.Series(dtype=object) for c in FAILURE_COLUMNS}),
                source=FAILURES_TABLE,
            )
        return pd.concat(frames, ignore_index=True)
