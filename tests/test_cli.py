"""`python -m system`: real processes, real sockets, clear errors."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from system.__main__ import main
from tests.conftest import REPO_ROOT
from tests.services import serve
from tests.support.waiting import eventually_sync


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment less its settings, plus `extra`.

    The spool and thumbnail folder are the test's own (the autouse fixture put them under
    tmp_path): the service's defaults would write into the working tree's `var/`.
    """
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "HOME"}}
    env.update(SPOOL_PATH=os.environ["SPOOL_PATH"], THUMBNAIL_DIR=os.environ["THUMBNAIL_DIR"])
    env.update(extra)
    return env


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "system", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "abc"], "not a port number"),
        (["serve", "--port", "70000"], "port out of range"),
        (["serve", "--workers", "0"], "--workers: must be 1-64"),
        (["worker", "--concurrency", "0"], "--concurrency: must be 1-64"),
        (["worker", "--concurrency", "abc"], "not a whole number"),
        (["explode"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_arguments_exit_2_in_a_real_process() -> None:
    result = _run("serve", "--port", "abc", env=_env())
    assert result.returncode == 2
    assert "not a port number" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_settings_exit_2_with_one_line(tmp_path: Path) -> None:
    result = _run("migrate", env=_env(DATABASE_URL="mysql://nope", BGG_RETRY_ATTEMPTS="lots"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DATABASE_URL" in lines[0] and "BGG_RETRY_ATTEMPTS" in lines[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:notaport/test", "not a valid URL"),
        ("postgresql+asyncpg://postgres@127.0.0.1:70000/test", "port out of range"),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432", "names no database"),
    ],
)
def test_malformed_database_url_stops_serve_with_one_line(url: str, message: str) -> None:
    result = _run("serve", "--port", "0", env=_env(DATABASE_URL=url))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0] and message in lines[0]


def test_migrate_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = _run(
        "migrate",
        env=_env(
            DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:9/none",
            DATABASE_CONNECT_TIMEOUT="1",
        ),
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "migration failed" in errors[0]
    assert "Traceback" not in result.stderr


def test_migrate_then_serve(tmp_path: Path) -> None:
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", ADMIN_TOKENS="t")
    assert _run("migrate", env=env).returncode == 0
    with serve(env, tmp_path) as process:
        assert httpx.get(f"{process.url}/health/ready", timeout=5).status_code == 200
        assert httpx.get(f"{process.url}/api/public/games", timeout=5).json()["total"] == 0


def test_serve_exits_0_after_sigterm(tmp_path: Path) -> None:
    """SIGTERM drains `serve` and it exits 0, as `worker` does. Before: uvicorn re-raised the
    signal after its graceful shutdown and the process died of it (-15)."""
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'term.db'}", ADMIN_TOKENS="t")
    with serve(env, tmp_path) as process:
        assert process.process is not None
        started = process.process
        process.send(signal.SIGTERM)
        code = process.wait_exit(30)
    assert code == 0, f"exit {code}: {process.last_log_line()}"
    assert started.returncode == 0


def test_migrate_to_rolls_back_and_forward(tmp_path: Path) -> None:
    """The spec's rollback plan as a user runs it: `migrate --to`, then `migrate` again."""
    database = tmp_path / "rollback.db"
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    assert _run("migrate", env=env).returncode == 0

    down = _run("migrate", "--to", "0001_boardgames", env=env)
    assert down.returncode == 0, down.stderr
    assert "downgraded from 0007_catalogue_version" in down.stdout
    assert _tables(database) == {"alembic_version", "boardgames"}

    again = _run("migrate", "--to", "0001_boardgames", env=env)
    assert "already at 0001_boardgames" in again.stdout

    up = _run("migrate", env=env)
    assert up.returncode == 0 and "upgraded from 0001_boardgames" in up.stdout
    assert "background_task_failures" in _tables(database)


def test_migrate_to_an_unknown_revision_exits_2_and_lists_them(tmp_path: Path) -> None:
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    result = _run("migrate", "--to", "0009_nothing", env=env)
    assert result.returncode == 2
    assert "unknown revision '0009_nothing'" in result.stderr
    assert "0001_boardgames" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists() or _tables(tmp_path / "x.db") == set()


def _tables(database: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            # sqlite_sequence (AUTOINCREMENT's counters) is SQLite's own and cannot be dropped.
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"
        ).fetchall()
    return {name for (name,) in rows}


def test_worker_runs_queued_jobs_and_drains_on_sigterm(tmp_path: Path) -> None:
    """A real `worker` process claims a job another process queued, and SIGTERM ends it 0."""
    database = tmp_path / "worker.db"
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{database}", JOB_POLL_SECONDS="0.1")
    assert _run("migrate", env=env).returncode == 0
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO background_jobs (task_type, payload, max_attempts, run_after,"
            " created_at, updated_at) VALUES ('thumbnail_download', '{\"game_id\": \"x\"}',"
            " 3, '2000-01-01 00:00:00', '2000-01-01 00:00:00', '2000-01-01 00:00:00')"
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "system", "worker", "--concurrency", "2"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def status() -> str:
            with contextlib.closing(sqlite3.connect(database)) as conn:
                return str(conn.execute("SELECT status FROM background_jobs").fetchone()[0])

        eventually_sync(status, "the worker to fail the bad job", until=lambda s: s == "failed")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    with contextlib.closing(sqlite3.connect(database)) as conn:
        (error_type,) = conn.execute("SELECT error_type FROM background_task_failures").fetchone()
    assert error_type == "InvalidJobPayload"
