"""`python -m loadtests` options: nonsense ends with one line and exit code 2, before anything."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.meta import git_commit
from loadtests import arguments, cli, runinfo
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--users", "0"], "argument --users: must be 1-10000, got 0"),
        (["--duration", "soon"], "not a duration"),
        (["--duration", "2h"], "not a duration"),
        (["--duration", "3"], "duration must be 5 s to 1 h"),
        (["--spawn-rate", "0"], "spawn rate must be in (0, 1000]"),
        (["--workers", "65"], "must be 1-64"),
        (["--shape", "spiky"], "invalid choice 'spiky'"),
        (["--service-env", "lower=1"], "expected KEY=VALUE"),
        (["--host", "http://192.0.2.1:8000"], "must be an http(s) URL on loopback"),
        (["--public-wait", "2-1"], "think time must be"),
        (["--slo-error-rate", "2"], "error rate must be in (0, 1] or off"),
        (["--outage-window", "0.7-0.3"], "outage window must be A-B"),
    ],
)
def test_bad_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1, err


def test_bad_variable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOADTEST_IMPORT_IDS", "ten")
    assert cli.main([]) == 2
    assert capsys.readouterr().err == (
        "python -m loadtests: error: LOADTEST_IMPORT_IDS: "
        "ids must be A-B whole numbers, got 'ten'\n"
    )


def test_inconsistent_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = str(tmp_path)
    assert (
        cli.main(
            [
                "--host",
                "http://127.0.0.1:9",
                "--service-env",
                "BGG_RETRY_ATTEMPTS=1",
                "--report-dir",
                report,
            ]
        )
        == 2
    )
    assert "--service-env needs a service started by this command" in capsys.readouterr().err
    assert cli.main(["--host", "http://127.0.0.1:9", "--report-dir", report]) == 2
    assert "needs --bgg-control-url" in capsys.readouterr().err
    assert cli.main(["--bgg-control-url", "http://127.0.0.1:9", "--report-dir", report]) == 2
    assert "--bgg-control-url is for --host" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [("60", 60), ("90s", 90), ("2m", 120), ("1m30s", 90)])
def test_durations(text: str, seconds: int) -> None:
    assert arguments.duration(text) == seconds


def test_entry_point_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    for flag in ("--service-env", "--slo-breaker-p99-ms", "--shape", "LOADTEST_PUBLIC_WEIGHT"):
        assert flag in result.stdout


def test_reports_never_show_secrets() -> None:
    shown = runinfo.redacted(
        {
            "ADMIN_TOKENS": "t1,t2",
            "SENTRY_DSN": "https://k@sentry.example/1",
            "DATABASE_URL": "postgresql+asyncpg://app:s3cret@127.0.0.1:5432/db",
            "BGG_RETRY_ATTEMPTS": "3",
        }
    )
    assert shown == {
        "ADMIN_TOKENS": "***",
        "SENTRY_DSN": "***",
        "DATABASE_URL": "postgresql+asyncpg://app:***@127.0.0.1:5432/db",
        "BGG_RETRY_ATTEMPTS": "3",
    }


def test_the_run_context_records_the_commit_as_chaos_reports_do() -> None:
    args = argparse.Namespace(users=5, spawn_rate=2.0, duration=30, locust_processes=None)
    run = runinfo.context(args, ["--users", "5"], {"host": "http://127.0.0.1:8000"}, (0, 0, 0))
    assert run["command"] == "python -m loadtests --users 5"
    assert run["host"] == "http://127.0.0.1:8000"
    assert run["git"] == git_commit()  # {"commit": ..., "dirty": ...}, None each if unknown
