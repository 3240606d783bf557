"""`python -m chaos`: the scenario list, and bad input ending with exit 2 and one line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.scenarios import NAMES
from tests.conftest import REPO_ROOT
from tests.services import free_port


def chaos(*args: str, report_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--report-dir", str(report_dir)] if report_dir is not None and args[0] == "run" else []
    return subprocess.run(
        [sys.executable, "-m", "chaos", *args, *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_list_names_every_scenario_with_its_fault() -> None:
    result = chaos("list")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert listed == list(NAMES)
    assert result.stdout.count("fault:") == len(NAMES)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run", "no_such_scenario"), "unknown scenario 'no_such_scenario'"),
        (("run", "--seed", "-1"), "--seed"),
        (("run", "--seed", "banana"), "--seed"),
        (("run", "--workers", "0"), "--workers"),
        (("run", "--service-env", "lowercase=1"), "--service-env"),
        (("run", "--database-url", "mysql://x"), "--database-url"),
        (("run", "--target", "http://127.0.0.1:1"), "--admin-token"),
        (("run", "--webhook-port", "0"), "--webhook-port"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    result = chaos(*args, report_dir=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert not (tmp_path / "summary.json").exists()


def test_unreachable_target_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = chaos("run", "--target", url, "--admin-token", "t", report_dir=tmp_path)
    assert result.returncode == 2
    assert f"cannot reach --target {url}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--bgg-port", "--webhook-port"])
def test_port_in_use_exits_2_and_starts_nothing(option: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = chaos("run", "bgg_outage", option, str(port), report_dir=tmp_path)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "not available" in result.stderr
    assert not (tmp_path / "logs").exists(), "no service was started"
