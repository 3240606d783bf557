"""`python -m system`: real processes, real sockets, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from system.__main__ import main
from tests.conftest import REPO_ROOT
from tests.services import serve


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "HOME"}}
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
        (["serve", "--workers", "0"], "workers must be 1-64"),
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
