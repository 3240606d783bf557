"""The set checker counts a superseded first run as an accounted-for end, not a loss, and
reads only records from the spool (as the service does)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.checker import check_tasks, read_spool
from chaos.database import TaskRows

T0 = datetime(2025, 12, 20, 10, 0, tzinfo=UTC)


def _initial(game: int, outcome: str, record: str) -> dict[str, Any]:
    return {
        "record_id": record,
        "task_type": "thumbnail_download",
        "game_id": game,
        "failure_id": None,
        "outcome": outcome,
        "trigger": "initial",
        "started_at": T0,
    }


def test_a_superseded_first_run_is_counted_as_such_not_lost() -> None:
    """Before: game 1 (stored) was lost and game 2 (spooled) a recorded failure."""
    rows = TaskRows(
        runs=[_initial(1, "superseded", "r1"), _initial(3, "success", "r3")], failures=[]
    )
    spool = [{k: v for k, v in _initial(2, "superseded", "r2").items() if k != "started_at"}]
    check = check_tasks(rows, spool, expected={1, 2, 3}, optional=set(), since=T0)
    assert (check.superseded, check.succeeded, check.recorded_failure) == (2, 1, 0)
    assert check.lost == []
    assert not check.data_lost
    assert check.to_json()["superseded"] == 2
    assert check.to_json()["lost"] == 0


def test_the_spool_reader_skips_lines_that_are_not_records(tmp_path: Path) -> None:
    """Before: `{}` and a record without a `record_id` were read as records (and a non-object
    line too), so the checker could count a task the service would never replay."""
    spool = tmp_path / "spool.jsonl"
    spool.write_text(
        '{"record_id": "a", "game_id": 1}\n'
        "{}\n"
        '{"game_id": 2, "outcome": "failure"}\n'
        '{"record_id": 3}\n'
        "[1, 2]\n"
        '{"record_id": "b"}\n',
        encoding="utf-8",
    )
    assert [r["record_id"] for r in read_spool(spool)] == ["a", "b"]
