"""The job check (chaos.checker.check_jobs): every expected job ends done, or failed with its
failure row; lost, doubled and invented jobs are found, from hand-made rows.

Each test states what the checker said before the job check existed: nothing about jobs, so
every loss below passed as `data_lost False`.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chaos.checker import JobCheck, TaskCheck, check_jobs, check_tasks, record_id_for
from chaos.database import SqliteBackend, TaskRows
from system.db.jobs import record_id_for as service_record_id_for
from tests.conftest import REPO_ROOT

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


def _job(
    job_id: int,
    status: str,
    *,
    game: int | None = None,
    attempts: int = 1,
    failure_id: int | None = None,
    trigger: str = "initial",
    task_type: str = "thumbnail_download",
    created: datetime = T0,
) -> dict[str, Any]:
    return {
        "id": job_id,
        "task_type": task_type,
        "payload": {"game_id": game, "url": f"http://cdn/{game}.png"} if game else {"bgg_id": 9},
        "trigger": trigger,
        "status": status,
        "attempts": attempts,
        "lease_expiries": max(0, attempts - 1),
        "run_after": T0,
        "lease_owner": "host:1:ab" if status == "running" else None,
        "failure_id": failure_id,
        "created_at": created,
    }


def _run(
    job_id: int, attempt: int, outcome: str, *, game: int | None = None,
    failure_id: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "record_id": record_id_for(job_id, attempt),
        "task_type": "thumbnail_download",
        "game_id": game,
        "failure_id": failure_id,
        "outcome": outcome,
        "trigger": "initial",
        "started_at": T0,
        "job_id": job_id,
    }


def _rows(
    jobs: list[dict[str, Any]],
    runs: Sequence[dict[str, Any]] = (),
    failures: Sequence[int] = (),
    games: Sequence[tuple[int, int]] = (),
) -> TaskRows:
    return TaskRows(
        runs=list(runs),
        failures=[{"id": f, "task_type": "thumbnail_download", "created_at": T0} for f in failures],
        jobs=jobs,
        games=[{"id": g, "bgg_id": b} for g, b in games],
        has_jobs=True,
        now=LATER,
    )


def _check(
    rows: TaskRows,
    games: set[int],
    job_ids: Collection[int] = (),
    spool: Sequence[dict[str, Any]] = (),
    optional: Collection[int] = (),
) -> JobCheck:
    return check_jobs(
        rows, list(spool), games=games, job_ids=set(job_ids), optional=set(optional), since=T0
    )


def test_the_harness_derives_run_record_ids_as_the_service_does() -> None:
    assert record_id_for(7, 2) == service_record_id_for(7, 2)
    assert record_id_for(7, 2) != record_id_for(7, 1)


def test_done_and_failed_with_a_failure_row_are_accounted_for() -> None:
    rows = _rows(
        [_job(1, "done", game=10), _job(2, "failed", game=20, failure_id=5),
         _job(3, "done", game=30, attempts=2)],
        [_run(1, 1, "success", game=10), _run(2, 1, "failure", game=20, failure_id=5),
         _run(3, 1, "superseded", game=30), _run(3, 2, "success", game=30)],
        failures=[5],
    )  # fmt: skip
    check = _check(rows, {10, 20, 30})
    assert (check.expected, check.done, check.failed_recorded) == (3, 2, 1)
    assert (check.lost, check.duplicated, check.unexpected, check.busy) == ([], [], [], [])
    assert not check.data_lost
    # The at-least-once rerun (a superseded attempt 1, then attempt 2) is one task, not two.
    tasks = check_tasks(rows, [], expected={10, 20, 30}, optional=set(), since=T0)
    assert (tasks.duplicated, tasks.succeeded, tasks.superseded) == ([], 2, 0)


def test_jobs_that_never_ended_or_ended_without_their_record_are_lost() -> None:
    """Before: the checker read no job table, so all of these passed."""
    rows = _rows(
        [_job(1, "queued", game=10, attempts=0), _job(2, "running", game=20),
         _job(3, "done", game=30), _job(4, "failed", game=40, failure_id=99),
         _job(5, "done", game=50, attempts=2)],
        [_run(5, 1, "success", game=50)],  # attempt 1's run, but the job says attempt 2
        failures=[1],
    )  # fmt: skip
    check = _check(rows, {10, 20, 30, 40, 50, 60})
    assert sorted(check.lost) == [-60, 1, 2, 3, 4, 5]  # 60: a 201 game with no job at all
    assert sorted(check.busy) == [1, 2]
    assert check.data_lost
    assert check.to_json()["lost"] == 6


def test_a_running_job_whose_record_waits_in_the_spool_is_not_lost() -> None:
    rows = _rows([_job(1, "running", game=10)])
    spool = [{"record_id": record_id_for(1, 1), "game_id": 10, "outcome": "failure"}]
    check = _check(rows, {10}, spool=spool)
    assert (check.in_spool, check.lost, check.busy) == (1, [], [])


def test_doubled_runs_failure_rows_jobs_and_games_are_duplicated() -> None:
    """Before: two successful runs of one job, or two failure rows of one job, passed."""
    rows = _rows(
        [_job(1, "done", game=10, attempts=2), _job(2, "failed", game=20, attempts=2,
         failure_id=6), _job(3, "done", game=30), _job(4, "done", game=30)],
        [_run(1, 1, "success", game=10), _run(1, 2, "success", game=10),
         _run(2, 1, "failure", game=20, failure_id=5), _run(2, 2, "failure", game=20,
         failure_id=6), _run(3, 1, "success", game=30), _run(4, 1, "success", game=30)],
        failures=[5, 6],
        games=[(10, 111), (20, 222), (30, 111)],
    )  # fmt: skip
    check = _check(rows, {10, 20, 30})
    assert sorted(check.duplicated) == [-30, -10, 1, 2, 3, 4]
    assert check.data_lost


def test_registered_job_ids_are_expected_and_unregistered_new_jobs_are_unexpected() -> None:
    rows = _rows(
        [_job(1, "done", task_type="bgg_import"), _job(2, "done", task_type="bgg_import"),
         _job(3, "done", game=10, trigger="auto_retry"), _job(4, "done", game=77),
         _job(5, "done", game=88), _job(6, "done", task_type="bgg_import",
         created=T0 - timedelta(seconds=1))],
        [_run(1, 1, "success"), _run(2, 1, "success"), _run(4, 1, "success", game=77),
         _run(5, 1, "success", game=88)],
    )  # fmt: skip
    check = _check(rows, set(), job_ids={1, 9}, optional={77})
    assert (check.expected, check.done) == (2, 1)
    assert check.lost == [9]  # registered, never written
    # 2: nobody's; 5: a game no import answered; 3 is a retry, 4 an optional game's, 6 older.
    assert sorted(check.unexpected) == [2, 5]


def test_a_database_without_a_job_table_lost_every_expected_job() -> None:
    """A service from before the queue: what it accepted was nowhere durable."""
    rows = TaskRows(runs=[], failures=[])
    check = _check(rows, {10, 20}, job_ids={3})
    assert sorted(check.lost) == [-20, -10, 3]
    assert not check.table and "no background_jobs table" in check.reason
    task_check = TaskCheck(attempted=0, jobs=check)
    assert task_check.data_lost
    assert task_check.to_json()["jobs"]["lost"] == 3


def test_the_sqlite_reader_reads_jobs_and_copes_with_an_older_schema(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{new}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "system", "migrate"], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(new) as conn:
        conn.execute(
            "INSERT INTO background_jobs (task_type, payload, status, attempts, max_attempts,"
            " lease_expiries, run_after, created_at, updated_at) VALUES ('thumbnail_download',"
            " '{\"game_id\": 4, \"url\": \"u\"}', 'queued', 0, 3, 0, '2026-12-06 09:00:00.000',"
            " '2026-12-06 09:00:00.000', '2026-12-06 09:00:00.000')"
        )
    rows = SqliteBackend(new)._read()
    assert rows.has_jobs and rows.now is not None and rows.now.tzinfo is not None
    (job,) = rows.jobs
    assert job["payload"] == {"game_id": 4, "url": "u"}
    assert job["run_after"] == datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

    old = tmp_path / "old.db"  # the tables as they were before migration 0006
    with sqlite3.connect(old) as conn:
        conn.execute(
            "CREATE TABLE background_task_runs (id INTEGER PRIMARY KEY, record_id TEXT,"
            " task_type TEXT, game_id INTEGER, failure_id INTEGER, outcome TEXT, attempts"
            " INTEGER, trigger TEXT, error_type TEXT, started_at TEXT, finished_at TEXT)"
        )
        conn.execute(
            "CREATE TABLE background_task_failures (id INTEGER PRIMARY KEY, task_type TEXT,"
            " game_id INTEGER, error_type TEXT, retry_count INTEGER, url TEXT, resolved"
            " BOOLEAN, resolved_at TEXT, created_at TEXT)"
        )
        conn.execute(
            "INSERT INTO background_task_runs VALUES (1, 'r', 'thumbnail_download', 4, NULL,"
            " 'success', 1, 'initial', NULL, '2026-12-06 09:00:00', '2026-12-06 09:00:01')"
        )
    rows = SqliteBackend(old)._read()
    assert not rows.has_jobs and rows.jobs == []
    assert rows.runs[0]["job_id"] is None and rows.runs[0]["outcome"] == "success"


def test_a_deleted_games_run_is_its_games_through_the_job_not_unexpected() -> None:
    # Deleting a game keeps its runs with game_id NULL (ON DELETE SET NULL). Before the runs
    # were attributed through their job, such a run was "unexpected" and the verdict
    # data_lost (database_outage deletes a game to check its commit).
    rows = _rows([_job(1, "done", game=7)], [_run(1, 1, "success", game=None)])
    check = check_tasks(rows, [], expected=set(), optional={7}, since=T0)
    assert check.unexpected == []
    # A run with neither a game nor a job naming one is still nobody's.
    orphan = _rows([], [{**_run(2, 1, "success"), "job_id": None}])
    assert check_tasks(orphan, [], expected=set(), optional={7}, since=T0).unexpected == [-1]
