"""How many failures (and runs) the window holds, when, of what kind and for which games: per
time bucket, per `error_type`, per distinct message, per `retry_count`, the top games."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, FromClause, func, null, or_, select

from notebooks.reliability.queries.profile import Profile
from notebooks.reliability.queries.reader import epochs, stamp_or_none, stamps
from notebooks.reliability.sql import FAILURES, GAMES, RUNS, count_if
from notebooks.reliability.timeutil import UTC_DTYPE

#: Above this many failure rows, message patterns are estimated from a sample.
EXACT_MESSAGE_ROWS = 200_000
#: About this many rows are sampled then.
MESSAGE_SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class Overview:
    """Counts over the window: rows, unresolved, resolved, first and last `created_at`."""

    failures: int
    unresolved: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    runs: int | None = None
    runs_first: pd.Timestamp | None = None
    runs_last: pd.Timestamp | None = None
    source: str = ""

    @property
    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The first and last time of any failure or run."""
        firsts = [t for t in (self.first, self.runs_first) if t is not None]
        lasts = [t for t in (self.last, self.runs_last) if t is not None]
        return (min(firsts) if firsts else None, max(lasts) if lasts else None)

    @property
    def resolved(self) -> int:
        """Failures marked resolved."""
        return self.failures - self.unresolved


class Counts(Profile):
    """The window's failures counted: in all, over time, by kind (from the one scan), by game."""

    def overview(self) -> Overview:
        """How many failures (and runs) the window holds, and their time span."""
        profile = self._profile()
        firsts = [s for s in (stamp_or_none(v) for v in profile["first"]) if s is not None]
        lasts = [s for s in (stamp_or_none(v) for v in profile["last"]) if s is not None]
        runs = runs_first = runs_last = None
        if self.has_runs:
            r = RUNS.c
            ((runs, runs_first, runs_last),) = self._rows(
                select(func.count(), func.min(r.started_at), func.max(r.started_at)).where(
                    *self._within(r.started_at)
                )
            )
        return Overview(
            failures=int(profile["failures"].sum()),
            unresolved=int(profile["unresolved"].fillna(0).sum()),
            first=min(firsts) if firsts else None,
            last=max(lasts) if lasts else None,
            runs=None if runs is None else int(runs),
            runs_first=stamp_or_none(runs_first),
            runs_last=stamp_or_none(runs_last),
            source=self.source,
        )

    def failures_over_time(self, bucket: int) -> pd.DataFrame:
        """Failures per time bucket (`bucket` seconds) and task type.

        Columns `bucket` (aware UTC, the bucket's start), `task_type`, `failures`,
        `unresolved`; empty buckets are not listed.
        """
        f, d = FAILURES.c, self.dialect
        key = d.bucket(f.created_at, int(bucket)).label("b")
        s = (
            select(key, f.task_type, func.count().label("n"), count_if(d.unresolved()).label("u"))
            .where(*self._within(f.created_at))
            .group_by("b", f.task_type)
            .subquery("s")
        ).c
        rows = self._rows(select(d.epoch(s.b), s.task_type, s.n, s.u).order_by(s.b, s.task_type))
        frame = pd.DataFrame(rows, columns=["bucket", "task_type", "failures", "unresolved"])
        frame["bucket"] = epochs(frame["bucket"])
        return frame.astype({"task_type": "str", "failures": "int64", "unresolved": "int64"})

    def error_types(self) -> pd.DataFrame:
        """Failures per `error_type`: `error_type` ("(none)" for NULL), `failures`,
        `unresolved`, `last_seen`, most frequent first."""
        profile = self._profile()
        frame = profile.assign(
            error_type=profile["error_type"].fillna("(none)"),
            last=pd.Series(
                [stamp_or_none(v) for v in profile["last"]], index=profile.index, dtype=UTC_DTYPE
            ),
        )
        grouped = frame.groupby("error_type", sort=False).agg(
            failures=("failures", "sum"),
            unresolved=("unresolved", "sum"),
            last_seen=("last", "max"),
        )
        grouped = grouped.reset_index().sort_values(
            ["failures", "error_type"], ascending=[False, True], kind="stable"
        )
        grouped["last_seen"] = grouped["last_seen"].astype(UTC_DTYPE)
        return grouped.astype(
            {"error_type": "str", "failures": "int64", "unresolved": "int64"}
        ).reset_index(drop=True)

    def message_groups(self) -> tuple[pd.DataFrame, float]:
        """Failures per distinct (`error_type`, `error_message`), and the share of rows read.

        Up to `EXACT_MESSAGE_ROWS` rows every row is counted (share 1.0); above, about
        `MESSAGE_SAMPLE_ROWS` rows are sampled and the share is below 1 (see
        `messages.message_patterns`, which scales the counts back).
        """
        total = int(self._profile()["failures"].sum())
        rows: FromClause = FAILURES
        fraction = 1.0
        if total > EXACT_MESSAGE_ROWS:
            percent = 100.0 * MESSAGE_SAMPLE_ROWS / total
            rows = self.dialect.sample(percent)
            fraction = percent / 100.0
        c = rows.c
        query = (
            select(c.error_type, c.error_message, func.count())
            .where(*self._within(c.created_at))
            .group_by(c.error_type, c.error_message)
        )
        frame = pd.DataFrame(self._rows(query), columns=["error_type", "error_message", "failures"])
        return frame.astype({"failures": "int64"}), fraction

    def retry_counts(self) -> pd.DataFrame:
        """Failures per `retry_count` (attempts made): `retry_count` (Int64, NA kept),
        `failures`."""
        profile = self._profile()
        grouped = (
            profile.astype({"retry_count": "Int64"})
            .groupby("retry_count", dropna=False, sort=True)["failures"]
            .sum()
            .reset_index()
        )
        return grouped.astype({"retry_count": "Int64", "failures": "int64"})

    def top_games(self, limit: int = 10) -> pd.DataFrame:
        """The games with the most failures: `game_id` (NA: the game was deleted), `title`,
        `bgg_id`, `failures`, `unresolved`, `last_failure`.

        The ranking is counted on the index (`idx_task_failure_game`), the details read for
        those games only.
        """
        f, d = FAILURES.c, self.dialect
        n = func.count().label("n")
        top = self._rows(
            select(f.game_id, n)
            .where(*self._within(f.created_at))
            .group_by(f.game_id)
            .order_by(n.desc(), f.game_id)
            .limit(int(limit))
        )
        columns = ["game_id", "title", "bgg_id", "failures", "unresolved", "last_failure"]
        ids = [int(g) for g, _ in top if g is not None]
        chosen: list[ColumnElement[bool]] = [f.game_id.in_(ids)] if ids else []
        if any(g is None for g, _ in top):
            chosen.append(f.game_id.is_(None))
        details: list[tuple[Any, ...]] = []
        if top:
            s = (
                select(
                    f.game_id,
                    func.count().label("failures"),
                    count_if(d.unresolved()).label("unresolved"),
                    func.max(f.created_at).label("last_failure"),
                )
                .where(*self._within(f.created_at, or_(*chosen)))
                .group_by(f.game_id)
                .subquery("f")
            )
            counts = (s.c.failures, s.c.unresolved, s.c.last_failure)
            if self.has_games:
                g = GAMES.alias("g")
                query = select(s.c.game_id, g.c.title, g.c.bgg_id, *counts).select_from(
                    s.outerjoin(g, g.c.id == s.c.game_id)
                )
            else:
                query = select(s.c.game_id, null(), null(), *counts)
            details = self._rows(query)
        frame = pd.DataFrame(details, columns=columns)
        frame["last_failure"] = stamps(frame["last_failure"])
        frame["title"] = frame["title"].astype(object).where(frame["title"].notna(), None)
        frame = frame.astype(
            {"game_id": "Int64", "bgg_id": "Int64", "failures": "int64", "unresolved": "int64"}
        )
        frame = frame.sort_values(
            ["failures", "game_id"], ascending=[False, True], kind="stable", na_position="last"
        )
        return frame.reset_index(drop=True)
