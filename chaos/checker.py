"""Nothing lost: a set checker for background tasks, after Jepsen's.

The harness knows which thumbnail tasks it started: one per import answered `201` (a new
game with a thumbnail URL). At the end of a scenario it compares that set with what is
durable: the `background_task_runs` table and the spool file. Each started task is exactly
one of

- **succeeded**: one initial run, outcome `success`;
- **recorded failure**: one initial run, outcome `failure`, with its failure row (or the
  record waiting in the spool, which is durable too);
- **superseded**: one initial run, outcome `superseded` (its download finished after the
  game was deleted or given another URL): an accounted-for end, neither a success nor lost;
- **lost**: started, but in neither place (or a failure run without its failure row);
- **duplicated**: more than one initial run for it, or more than one failure row;

and anything recorded in the scenario's time window that the harness never started is
**unexpected**. Lost, duplicated or unexpected fail the run with exit code 3.

Imports answered `200` (an existing game) may or may not start a task (the service skips a
thumbnail it already has), so their games are allowed a record but not required to have one.
Retries (`trigger` `auto_retry` / `manual_retry`) are runs of an existing failure, not new
tasks, and are not part of the set.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.database import TaskRows

TASK_TYPE = "thumbnail_download"


@dataclass
class TaskCheck:
    """The verdict of the set checker for one scenario."""

    attempted: int = 0
    succeeded: int = 0
    recorded_failure: int = 0
    superseded: int = 0
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    in_spool: int = 0
    checked: bool = True
    reason: str = ""

    @property
    def data_lost(self) -> bool:
        """Whether anything was lost, doubled or invented."""
        return bool(self.lost or self.duplicated or self.unexpected)

    @property
    def success_rate(self) -> float | None:
        """Share of started tasks that succeeded."""
        return None if self.attempted == 0 else self.succeeded / self.attempted

    def to_json(self) -> dict[str, Any]:
        """Plain data for the summary and the journal."""
        return {
            "checked": self.checked,
            "reason": self.reason or None,
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "recorded_failure": self.recorded_failure,
            "superseded": self.superseded,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "unexpected": len(self.unexpected),
            "in_spool": self.in_spool,
            "lost_game_ids": self.lost[:50],
            "duplicated_game_ids": self.duplicated[:50],
            "unexpected_game_ids": self.unexpected[:50],
            "task_success_rate": self.success_rate,
        }


def read_spool(path: Path | None) -> list[dict[str, Any]]:
    """The records waiting in the spool. As the service does, a line that is not a record is
    skipped: a torn last line, or one without a `record_id` to replay it by."""
    if path is None or not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("record_id"), str):
            records.append(record)
    return records


def _initial_records(
    rows: TaskRows, spool: list[dict[str, Any]], since: datetime
) -> dict[str, dict[str, Any]]:
    """Initial thumbnail runs in the window, by record id (table first, then the spool)."""
    records: dict[str, dict[str, Any]] = {}
    for run in rows.runs:
        if run.get("task_type") != TASK_TYPE or run.get("trigger") != "initial":
            continue
        started = run.get("started_at")
        if isinstance(started, datetime) and started < since:
            continue
        records[str(run["record_id"])] = {**run, "where": "table"}
    for record in spool:
        if record.get("task_type") != TASK_TYPE or record.get("trigger", "initial") != "initial":
            continue
        key = str(record.get("record_id"))
        if key not in records:  # in both: stored, replay pending; it counts once
            records[key] = {**record, "where": "spool"}
    return records


def check_tasks(
    rows: TaskRows,
    spool: list[dict[str, Any]],
    *,
    expected: set[int],
    optional: set[int],
    since: datetime,
) -> TaskCheck:
    """Classify every started task (game ids) against the tables and the spool."""
    records = _initial_records(rows, spool, since)
    by_game: dict[int | None, list[dict[str, Any]]] = {}
    for record in records.values():
        by_game.setdefault(record.get("game_id"), []).append(record)
    failure_ids = {row["id"] for row in rows.failures}
    failure_rows = Counter(
        row.get("game_id")
        for row in rows.failures
        if row.get("task_type") == TASK_TYPE
        and isinstance(row.get("created_at"), datetime)
        and row["created_at"] >= since
    )
    result = TaskCheck(attempted=len(expected))
    for game_id in sorted(expected):
        found = by_game.get(game_id, [])
        if not found:
            result.lost.append(game_id)
            continue
        if len(found) > 1 or failure_rows.get(game_id, 0) > 1:
            result.duplicated.append(game_id)
            continue
        record = found[0]
        if record["where"] == "spool":
            result.in_spool += 1
        if record.get("outcome") == "success":
            result.succeeded += 1
        elif record.get("outcome") == "superseded":
            result.superseded += 1
        elif record["where"] == "spool" or record.get("failure_id") in failure_ids:
            result.recorded_failure += 1
        else:
            result.lost.append(game_id)  # a failure run whose failure row is missing
    for other, found in by_game.items():
        if other in expected:
            continue
        if other is None or other not in optional:
            result.unexpected.append(-1 if other is None else other)
        elif len(found) > 1:
            result.duplicated.append(other)
    return result
