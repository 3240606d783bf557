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
tasks, and are not part of the set. A run that is `superseded` because its job had been taken
over (a later attempt of the same job ran too) is the queue's at-least-once rerun, judged by
the job check, not a second task.

**Jobs** (`check_jobs`, docs/design/0001-job-queue.md decision 11). Background work is a row of
`background_jobs`; the expected jobs are the `thumbnail_download` job of every game above
(its payload names the game) and every job id a scenario registered (`Context.expect_jobs`,
e.g. what a bulk import answered 202 with). After the settle wait each is

- **done**: status `done`, and the run of its last attempt (`record_id` derived from job id
  and attempt, as the service derives it) exists with outcome `success` or `superseded`;
- **failed and recorded**: status `failed`, and its `failure_id` names an existing failure row;
- **in the spool**: still `running`, but the record of its current attempt waits in the
  spool (durable: the replay finishes the job);
- **lost**: no job row, still `queued` / `running`, `done` without its run, or `failed`
  without its failure row;
- **duplicated**: two runs of one job that are not `superseded`, runs of one job naming two
  failure rows, two jobs for one game's first download, or two games with one `bgg_id`;

and a job created in the window that nobody expected is **unexpected** (retries, `auto_retry`
/ `manual_retry`, are not). A database without a job table (a service from before the queue)
has every expected job lost: the work it accepted was nowhere durable.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.database import TaskRows
from chaos.events import json_lines

TASK_TYPE = "thumbnail_download"

#: The service's namespace of run record ids (system/db/jobs.py, `JOB_RECORD_NAMESPACE`):
#: attempt `a` of job `j` is recorded as uuid5(namespace, "j:a"). Stated here, not imported,
#: because the harness judges the service from outside; a test keeps the two equal.
JOB_RECORD_NAMESPACE = uuid.UUID("6b3f7a52-3c1e-4f0e-9d7a-0b9a3c2e8f11")
#: Triggers of jobs that retry an existing failure: not new work a scenario must expect.
RETRY_TRIGGERS = ("auto_retry", "manual_retry")


def record_id_for(job_id: int, attempt: int) -> str:
    """The run record id of attempt `attempt` of job `job_id`, as the service makes it."""
    return str(uuid.uuid5(JOB_RECORD_NAMESPACE, f"{job_id}:{attempt}"))


@dataclass
class JobCheck:
    """The verdict of the job check for one scenario (see the module's docstring)."""

    expected: int = 0
    done: int = 0
    failed_recorded: int = 0
    in_spool: int = 0
    #: Expected jobs by id, or `-game_id` for a game whose thumbnail job has no row at all.
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    #: Job ids that are queued and due, or running (not in the spool): the settle waits on them.
    busy: list[int] = field(default_factory=list)
    #: Whether the database has a job table.
    table: bool = True
    #: Why the expected jobs are what they are (e.g. "no background_jobs table").
    reason: str = ""

    @property
    def data_lost(self) -> bool:
        """Whether a job was lost, doubled or invented."""
        return bool(self.lost or self.duplicated or self.unexpected)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the summary and the journal."""
        return {
            "table": self.table,
            "reason": self.reason or None,
            "expected": self.expected,
            "done": self.done,
            "failed_recorded": self.failed_recorded,
            "in_spool": self.in_spool,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "unexpected": len(self.unexpected),
            "busy": len(self.busy),
            "lost_job_ids": self.lost[:50],
            "duplicated_job_ids": self.duplicated[:50],
            "unexpected_job_ids": self.unexpected[:50],
        }


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
    #: The job check (None where it was not made, e.g. without database access).
    jobs: JobCheck | None = None

    @property
    def data_lost(self) -> bool:
        """Whether anything was lost, doubled or invented (tasks or jobs)."""
        jobs_lost = self.jobs is not None and self.jobs.data_lost
        return bool(self.lost or self.duplicated or self.unexpected or jobs_lost)

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
            "jobs": self.jobs.to_json() if self.jobs is not None else None,
        }


def read_spool(path: Path | None) -> list[dict[str, Any]]:
    """The records waiting in the spool. As the service does, a line that is not a record is
    skipped: a torn last line, or one without a `record_id` to replay it by."""
    if path is None or not path.exists():
        return []
    return [record for record in json_lines(path) if isinstance(record.get("record_id"), str)]


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
    # A deleted game's runs keep their history with `game_id` NULL (ON DELETE SET NULL);
    # their job still names the game.
    job_games = {int(job["id"]): _payload_game(job) for job in rows.jobs}
    by_game: dict[int | None, list[dict[str, Any]]] = {}
    for record in records.values():
        game = record.get("game_id")
        if game is None and record.get("job_id") is not None:
            game = job_games.get(int(record["job_id"]))
        by_game.setdefault(game, []).append(record)
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
        found = _without_reruns(by_game.get(game_id, []))
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
        elif len(_without_reruns(found)) > 1:
            result.duplicated.append(other)
    return result


def _without_reruns(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A game's initial runs without those of a job attempt that was taken over (stored as
    `superseded` because a later attempt ran): at-least-once, one task, judged per job."""
    if len(found) < 2:
        return found
    kept = [
        r for r in found if not (r.get("job_id") is not None and r.get("outcome") == "superseded")
    ]
    return kept or found[:1]


def check_jobs(
    rows: TaskRows,
    spool: list[dict[str, Any]],
    *,
    games: set[int],
    job_ids: set[int],
    optional: set[int],
    since: datetime,
) -> JobCheck:
    """Classify the expected jobs: the thumbnail job of each of `games`, and `job_ids`.

    `optional` games (imports answered 200, earlier scenarios' games) may have jobs too.
    """
    result = JobCheck(table=rows.has_jobs)
    if not rows.has_jobs:
        result.reason = "no background_jobs table: accepted work is not durable"
    jobs = {int(job["id"]): job for job in rows.jobs}
    runs_by_job: dict[int, list[dict[str, Any]]] = {}
    for run in rows.runs:
        if run.get("job_id") is not None:
            runs_by_job.setdefault(int(run["job_id"]), []).append(run)
    runs_by_record = {str(run["record_id"]): run for run in rows.runs}
    spooled = {str(record["record_id"]): record for record in spool}
    failure_ids = {row["id"] for row in rows.failures}

    in_window = [job for job in jobs.values() if _at_or_after(job.get("created_at"), since)]
    thumbnail_jobs: dict[int, list[int]] = {}
    for job in in_window:
        game = _payload_game(job)
        if job.get("task_type") == TASK_TYPE and job.get("trigger") == "initial" and game:
            thumbnail_jobs.setdefault(game, []).append(int(job["id"]))

    expected: set[int] = set(job_ids)
    for game in sorted(games):
        found = thumbnail_jobs.get(game, [])
        if not found:
            result.lost.append(-game)  # the game was answered 201; its job was never written
        elif len(found) > 1 and game not in optional:
            result.duplicated.extend(found)
        expected.update(found)
    result.expected = len(games) + len(set(job_ids) - _ids_of(thumbnail_jobs, games))

    for job_id in sorted(expected):
        row = jobs.get(job_id)
        if row is None:
            result.lost.append(job_id)
            continue
        verdict = _judge(row, runs_by_job.get(job_id, []), runs_by_record, spooled, failure_ids)
        if verdict == "duplicated":
            if job_id not in result.duplicated:
                result.duplicated.append(job_id)
        elif verdict == "done":
            result.done += 1
        elif verdict == "failed_recorded":
            result.failed_recorded += 1
        elif verdict == "in_spool":
            result.in_spool += 1
        else:
            result.lost.append(job_id)

    allowed = games | optional
    for job in in_window:
        job_id = int(job["id"])
        if job_id in expected or job.get("trigger") in RETRY_TRIGGERS:
            continue
        if job.get("task_type") == TASK_TYPE and _payload_game(job) in allowed:
            continue
        result.unexpected.append(job_id)

    bgg_ids = Counter(game.get("bgg_id") for game in rows.games)
    result.duplicated.extend(
        -int(game["id"]) for game in rows.games if bgg_ids[game.get("bgg_id")] > 1
    )

    now = rows.now
    for job in jobs.values():
        status = job.get("status")
        current = record_id_for(int(job["id"]), int(job.get("attempts") or 0))
        due = (
            now is None or not isinstance(job.get("run_after"), datetime) or job["run_after"] <= now
        )
        if (status == "queued" and due) or (status == "running" and current not in spooled):
            result.busy.append(int(job["id"]))
    return result


def _judge(
    job: dict[str, Any],
    runs: list[dict[str, Any]],
    runs_by_record: dict[str, dict[str, Any]],
    spooled: dict[str, dict[str, Any]],
    failure_ids: set[Any],
) -> str:
    """One expected job's verdict: done, failed_recorded, in_spool, duplicated or lost."""
    counted = [run for run in runs if run.get("outcome") != "superseded"]
    failures = {run.get("failure_id") for run in runs if run.get("failure_id") is not None}
    if job.get("failure_id") is not None:
        failures.add(job["failure_id"])
    if len(counted) > 1 or len(failures) > 1:
        return "duplicated"
    status = job.get("status")
    last = record_id_for(int(job["id"]), int(job.get("attempts") or 0))
    if status == "done":
        run = runs_by_record.get(last)
        ok = run is not None and run.get("outcome") in ("success", "superseded")
        return "done" if ok else "lost"
    if status == "failed":
        return "failed_recorded" if job.get("failure_id") in failure_ids else "lost"
    if status == "running" and last in spooled:
        return "in_spool"
    return "lost"  # still queued or running after the settle wait


def _payload_game(job: dict[str, Any]) -> int | None:
    payload = job.get("payload")
    game = payload.get("game_id") if isinstance(payload, dict) else None
    return game if isinstance(game, int) else None


def _at_or_after(value: Any, since: datetime) -> bool:
    return not isinstance(value, datetime) or value >= since


def _ids_of(thumbnail_jobs: dict[int, list[int]], games: set[int]) -> set[int]:
    return {job_id for game in games for job_id in thumbnail_jobs.get(game, [])}
