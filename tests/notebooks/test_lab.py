"""`nox -s lab` (`python -m notebooks.lab`): JupyterLab on notebooks/, loopback only, no
browser, root allowed, kernels wired to this checkout and its reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from chaos.service import free_port
from notebooks.dataset import REPORTS_ENV
from notebooks.lab import LOOPBACK, SOURCE_DIR, command, environment
from notebooks.reliability.paths import REPO
from tests.support.waiting import eventually_sync


def test_the_command_line_listens_on_loopback_without_a_browser() -> None:
    line = command(["--port", "8899"], root=False)
    assert line[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.ip=127.0.0.1" in line
    assert "--ServerApp.open_browser=False" in line
    assert f"--ServerApp.root_dir={SOURCE_DIR}" in line
    assert "--allow-root" not in line
    assert line[-2:] == ["--port", "8899"]  # ARGS last: they win
    assert "--allow-root" in command(root=True)


def test_kernels_see_this_checkout_and_its_reports(tmp_path: Path) -> None:
    env = environment({"PYTHONPATH": "/elsewhere", "PATH": "/bin"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO), "/elsewhere"]
    assert env[REPORTS_ENV] == str(REPO / "reports")
    assert env["PATH"] == "/bin"
    chosen = environment({REPORTS_ENV: str(tmp_path)})
    assert chosen[REPORTS_ENV] == str(tmp_path)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at `port` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def _api(port: int, token: str) -> dict[str, Any] | None:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/api/contents", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except (urllib.error.URLError, ConnectionError):
        return None


@pytest.mark.slow
def test_the_lab_serves_the_notebooks_on_loopback_only(tmp_path: Path) -> None:
    port, token = free_port(), "lab-test-token"
    env = environment()
    env[REPORTS_ENV] = str(tmp_path / "reports")
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[name] = str(tmp_path / name.lower())  # nothing written to the home folder
    log = (tmp_path / "lab.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notebooks.lab",
            "--port",
            str(port),
            f"--IdentityProvider.token={token}",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        contents: dict[str, Any] | None = eventually_sync(
            lambda: _api(port, token) if process.poll() is None else {"exited": process.returncode},
            "JupyterLab answering /api/contents",
            within=90,
        )
        assert contents is not None  # eventually_sync returns only a truthy value
        assert "exited" not in contents, (tmp_path / "lab.log").read_text()[-2000:]
        names = {str(item["name"]) for item in contents["content"]}
        assert {"reliability_report.ipynb", "failure_analysis.ipynb"} <= names
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    assert process.returncode is not None
    assert str(tmp_path / "reports") in (tmp_path / "lab.log").read_text()
