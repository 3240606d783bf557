"""`python -m chaos demo`: a filled catalogue to browse, every printed URL answers, and a
signal stops everything; bad arguments are one line and exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from chaos.cli import main
from chaos.demo import BROWSE, READY_LINE
from tests.support.processes import OutputLines

REPO = Path(__file__).resolve().parents[2]
TOKEN = "demo-test-token-not-a-secret"
#: The 40 collection games and the 5 `thing` fixtures.
GAMES = 45


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration: must be more than 0"),
        (["--duration", "soon"], "not a number of seconds: 'soon'"),
        (["--exit-after-import", "--duration", "5"], "not allowed with argument"),
        (["--import-timeout", "-1"], "--import-timeout: must be more than 0"),
        (["--service-port", "70000"], "port out of range"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", *args])

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def _printed_urls(output: list[str]) -> dict[str, tuple[str, bool]]:
    """`{label: (url, admin)}` of the URLs the demo printed to browse."""
    urls = {}
    for label, _path, admin in BROWSE:
        line = next(line for line in output if line.startswith(f"  {label:<14} "))
        urls[label] = (line.split()[-2 if admin else -1], admin)
    return urls


@pytest.mark.slow
def test_the_demo_fills_the_catalogue_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos", "demo", "--admin-token", TOKEN,
         "--log-dir", str(tmp_path / "logs"), "--duration", "600"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    printed = OutputLines(process)
    output = printed.seen
    try:
        printed.wait_for(READY_LINE, within=180, what="the demo")
        urls = _printed_urls(output)
        service = urls["home"][0].rstrip("/")
        with httpx.Client(trust_env=False, timeout=10) as client:
            page = client.get(f"{service}/api/public/games", params={"limit": 100}).json()
            assert page["total"] == GAMES
            assert all(game["has_thumbnail"] for game in page["items"])
            titles = {game["title"] for game in page["items"]}
            assert {"Catan", "Pandemic", "Brass: Lancashire", "Agricola"} <= titles
            for label, (url, admin) in urls.items():
                headers = {"Authorization": f"Bearer {TOKEN}"} if admin else {}
                assert client.get(url, headers=headers).status_code == 200, label
            assert client.get(urls["jobs"][0]).status_code == 401  # the token is needed
        assert TOKEN not in "\n".join(output), "a token the user gave is never printed"
        assert any("games 45/45, thumbnails 45/45" in line for line in output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()  # a demo that ignores SIGINT must not outlive the test
            raise
        printed.close()
    assert code == 0, output[-5:]
    fakes = [line.split()[-1] for line in output if line.startswith(("  fake BGG", "  fake CDN"))]
    assert len(fakes) == 2
    for url in (service, *fakes):  # nothing the demo started still answers
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
