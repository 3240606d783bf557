"""The thread runner and the command lines of the fakes and the proxy."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from chaos.fakes import bgg_base_url, create_cdn_app, run_in_thread
from chaos.fakes.__main__ import main as fakes_main
from chaos.proxy.__main__ import main as proxy_main

REPO = Path(__file__).resolve().parents[2]


def test_run_in_thread_context_manager() -> None:
    with run_in_thread(create_cdn_app(), port=0) as server:
        assert server.running
        assert server.url == f"http://127.0.0.1:{server.port}"
        response = httpx.get(f"{server.url}/_control/health", trust_env=False)
        assert response.json()["name"] == "cdn"
    assert not server.running
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/_control/health", trust_env=False, timeout=1)


def test_run_in_thread_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_in_thread(create_cdn_app(), host="0.0.0.0")


def test_run_in_thread_reports_a_busy_port() -> None:
    with run_in_thread(create_cdn_app()) as server, pytest.raises(OSError, match="in use"):
        run_in_thread(create_cdn_app(), port=server.port)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required"),
        (["nope"], "invalid choice"),
        (["bgg", "--port", "99999"], "port out of range"),
        (["bgg", "--port", "x"], "invalid port"),
        (["bgg", "--host", "0.0.0.0"], "loopback"),
        (["bgg", "--seed", "x"], "invalid int"),
        (["bgg", "--cdn-url", "ftp://x"], "not an http(s) URL"),
        (["cdn", "--cdn-url", "http://127.0.0.1:1"], "only applies to bgg"),
    ],
)
def test_fakes_cli_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        fakes_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--proxy", "noequals"],
        ["--proxy", "x=host"],
        ["--host", "10.0.0.1"],
        ["--control-port", "-1"],
    ],
)
def test_proxy_cli_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        proxy_main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_fakes_cli_runs_in_the_foreground() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos.fakes", "bgg", "--port", "0", "--seed", "3",
         "--cdn-url", "http://127.0.0.1:9"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("bgg listening on http://127.0.0.1:")
        url = line.split()[3]
        assert line.split()[4] == f"BGG_BASE_URL={bgg_base_url(url)}"
        with httpx.Client(trust_env=False, timeout=5) as client:
            thing = client.get(bgg_base_url(url) + "/thing?id=5")
            assert b"http://127.0.0.1:9/images/pic5.jpg" in thing.content
            assert client.get(f"{url}/_control/health").json()["seed"] == 3
    finally:
        process.terminate()
        process.wait(5)  # raises if SIGTERM did not stop it
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
    assert process.returncode in (0, -signal.SIGTERM)
