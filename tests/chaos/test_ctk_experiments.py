"""The experiments in `experiments/`, run by the real Chaos Toolkit against `python -m chaos stack`.

Each experiment passes `chaos validate`; `chaos run` exits 0 on a healthy stack and 1 (the
steady state deviated) on a stack whose service runs a mutant setting that breaks the
promise the experiment checks. Chaos Toolkit's one blind spot, exit 0 when the steady state
is not met *before* the method, is shown and caught (`python -m chaos verdict`). The stack
itself: every URL printed, the env file written without the token, and nothing left running
or on disk after SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.cli import main
from chaos.ctk_verdict import verdict
from chaos.service import free_port
from chaos.stack_cli import ENV_KEYS, READY_LINE, TOKEN_ENV
from tests.support.processes import OutputLines

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
#: Chaos Toolkit's CLI, installed with the test extra next to this interpreter.
CHAOS_CLI = Path(sys.executable).with_name("chaos")
TOKEN = "ctk-test-token-not-a-secret"
POSTGRES = os.environ.get("TEST_DATABASE_URL", "")


@dataclass
class RunningStack:
    """A `python -m chaos stack` process that said it is ready."""

    process: subprocess.Popen[str]
    env_file: Path
    output: list[str]

    def config(self) -> dict[str, str]:
        """The env file's KEY=VALUE lines."""
        lines = self.env_file.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
    env[TOKEN_ENV] = TOKEN
    return env


@contextmanager
def stack(tmp_path: Path, *args: str) -> Iterator[RunningStack]:
    """Start `python -m chaos stack ARGS`, wait for its ready line; SIGTERM it afterwards and
    check it stopped cleanly (exit 0, env file removed)."""
    env_file = tmp_path / "stack.env"
    command = [sys.executable, "-m", "chaos", "stack", "--env-file", str(env_file),
               "--log-dir", str(tmp_path / "logs"), *args]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=_base_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    printed = OutputLines(process)
    output = printed.seen
    running = RunningStack(process, env_file, output)
    urls: list[str] = []
    try:
        printed.wait_for(READY_LINE, within=90, what="the stack")
        ours = "--target" not in args  # a target is someone else's: it keeps running
        urls = [
            value
            for key, value in running.config().items()
            if value.startswith("http") and (ours or key != ENV_KEYS["service_url"])
        ]
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        printed.close()
    assert code == 0, output[-5:]
    assert not env_file.exists(), "the env file outlived the stack"
    for url in urls:  # nothing the stack started still answers
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)


def run_experiment(name: str, running: RunningStack, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """`chaos run --no-version-check --var-file ENV experiments/NAME.json`: exit code, journal."""
    journal = tmp_path / f"journal-{name}.json"
    result = subprocess.run(
        [str(CHAOS_CLI), "--no-version-check", "--log-file", str(tmp_path / f"{name}.log"),
         "run", "--journal-path", str(journal), "--var-file", str(running.env_file),
         str(EXPERIMENTS / f"{name}.json")],
        cwd=tmp_path, env=_base_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert journal.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    text = journal.read_text()
    assert TOKEN not in text, "the admin token leaked into the journal"
    return result.returncode, json.loads(text)


def _unmet(journal: dict[str, Any], phase: str) -> list[str]:
    state = journal["steady_states"][phase]
    return [p["activity"]["name"] for p in state["probes"] if not p["tolerance_met"]]


def _experiments() -> list[Path]:
    return sorted(EXPERIMENTS.glob("*.json"))


def test_the_scenarios_that_must_exist_are_experiments() -> None:
    names = {path.stem for path in _experiments()}
    assert {"bgg_outage", "cdn_outage", "database_outage"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", _experiments(), ids=lambda p: p.stem)
def test_experiment_passes_chaos_validate(path: Path, tmp_path: Path) -> None:
    # Validation loads the configuration, so it needs the variables a run has (any value).
    env = _base_env() | dict.fromkeys(ENV_KEYS.values(), "http://127.0.0.1:9")
    result = subprocess.run(
        [str(CHAOS_CLI), "--no-version-check", "validate", str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Experiment looks valid" in result.stdout + result.stderr


@pytest.mark.parametrize("path", _experiments(), ids=lambda p: p.stem)
def test_experiment_uses_http_and_env_configuration_only(path: Path) -> None:
    experiment = json.loads(path.read_text())
    known = set(ENV_KEYS.values()) | {TOKEN_ENV}
    for key, value in experiment["configuration"].items():
        assert isinstance(value, dict) and value.get("type") == "env", key
        assert value["key"] in known, f"{key}: {value['key']} is not written by the stack"
        assert "default" not in value, f"{key}: a forgotten env file must fail, not default"
    activities = (
        experiment["steady-state-hypothesis"]["probes"]
        + experiment["method"]
        + experiment["rollbacks"]
    )
    assert all(a["provider"]["type"] == "http" for a in activities)
    # Rollbacks put every fault back: both fakes and every proxy reset.
    resets = {a["provider"]["url"] for a in experiment["rollbacks"]}
    assert "${proxy_control_url}/reset" in resets
    assert resets & {"${bgg_control_url}/reset", "${cdn_control_url}/reset"}
    assert TOKEN not in path.read_text() and "Bearer ${admin_token}" in path.read_text()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One healthy SQLite stack for the module's healthy runs (rollbacks reset the fakes)."""
    with stack(tmp_path_factory.mktemp("healthy")) as running:
        yield running


@pytest.mark.slow
def test_stack_prints_every_url_and_writes_no_token(healthy: RunningStack) -> None:
    printed = "\n".join(healthy.output)
    config = healthy.config()
    urls = ("service_url", "bgg_control_url", "cdn_control_url", "proxy_control_url")
    assert set(config) == {ENV_KEYS[key] for key in urls}
    for url in config.values():
        assert url in printed
    for label in ("BGG (proxy)", "CDN (proxy)", "alert webhook"):
        assert label in printed
    assert TOKEN not in printed and TOKEN not in healthy.env_file.read_text()
    answer = httpx.get(
        f"{config['CHAOS_SERVICE_URL']}/api/admin/monitoring/circuit-breakers",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert answer.status_code == 200  # the service took the token from the environment


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bgg_outage", "cdn_outage"])
def test_experiment_holds_on_a_healthy_stack(
    name: str, healthy: RunningStack, tmp_path: Path
) -> None:
    code, journal = run_experiment(name, healthy, tmp_path)
    assert (code, journal["status"], journal["deviated"]) == (0, "completed", False), (
        _unmet(journal, "after") if journal["steady_states"].get("after") else journal
    )
    assert journal["steady_states"]["before"]["steady_state_met"]
    assert journal["steady_states"]["after"]["steady_state_met"]
    assert verdict(journal)[0] == 0


#: A candidate setting that breaks what each experiment checks, and the probe that says so.
MUTANTS = {
    "bgg_outage": ("BGG_BREAKER_FAIL_MAX=1000", "bgg-saw-at-most-fail-max-failing-requests"),
    "cdn_outage": ("AUTO_RETRY_MAX=0", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_experiment_deviates_on_a_mutant(name: str, tmp_path: Path) -> None:
    setting, probe = MUTANTS[name]
    with stack(tmp_path, "--service-env", setting) as running:
        code, journal = run_experiment(name, running, tmp_path)
    assert (code, journal["deviated"]) == (1, True)
    assert journal["steady_states"]["before"]["steady_state_met"]
    unmet = _unmet(journal, "after")
    if probe is not None:
        assert unmet == [probe]
    else:  # the first probe the mutant fails ends the check (Chaos Toolkit stops there)
        assert unmet and unmet[0] in {"no-unresolved-thumbnail-failures", "cdn-breaker-closed"}
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"] * 3
    assert verdict(journal)[0] == 1


@pytest.mark.slow
def test_steady_state_not_met_before_exits_0_and_the_verdict_says_so(
    healthy: RunningStack, tmp_path: Path
) -> None:
    """Chaos Toolkit's blind spot: a stack that is not in its steady state to begin with."""
    config = healthy.config()
    control = config["CHAOS_BGG_CONTROL_URL"]
    bgg = control.removesuffix("/_control")
    with httpx.Client(timeout=5) as client:
        # The fake BGG's log already holds more `bgg-outage` failures than the breaker allows.
        client.post(f"{control}/faults/add", json={"name": "bgg-outage", "path": "/thing",
                                                   "status": 503}).raise_for_status()  # fmt: skip
        for _ in range(6):
            assert client.get(f"{bgg}/xmlapi2/thing", params={"id": 1}).status_code == 503
    code, journal = run_experiment("bgg_outage", healthy, tmp_path)
    assert code == 0  # Chaos Toolkit's own answer: nothing deviated...
    before = journal["steady_states"]["before"]
    assert before["steady_state_met"] is False  # ...because nothing was tried
    assert _unmet(journal, "before") == ["bgg-saw-at-most-fail-max-failing-requests"]
    assert journal["run"] == [] and journal["steady_states"]["after"] is None
    assert verdict(journal)[0] == 2
    shown = subprocess.run(
        [sys.executable, "-m", "chaos", "verdict", str(tmp_path / "journal-bgg_outage.json")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 2, shown.stdout + shown.stderr
    assert "not met before the method" in shown.stdout
    # The rollbacks still ran: the next run starts clean.
    assert httpx.get(f"{control}/requests", params={"limit": 0}, timeout=5).json()["count"] == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES.startswith("postgresql"), reason="TEST_DATABASE_URL not set")
@pytest.mark.parametrize(("setting", "expected"), [(None, 0), ("RECORD_FAILURES=false", 1)])
def test_database_outage(setting: str | None, expected: int, tmp_path: Path) -> None:
    """On `--database postgresql` (the database behind the proxy): holds on a healthy service,
    deviates when task records that fall in the outage are lost (jobs never end)."""
    args = ["--database", "postgresql", "--database-url", POSTGRES]
    if setting is not None:
        args += ["--service-env", setting]
    with stack(tmp_path, *args) as running:
        assert running.config()["CHAOS_DATABASE_PROXY"] == "pg-service"
        code, journal = run_experiment("database_outage", running, tmp_path)
    assert journal["steady_states"]["before"]["steady_state_met"]
    assert (code, journal["deviated"]) == (expected, bool(expected)), _unmet(journal, "after")
    during = {r["activity"]["name"]: r["output"]["status"] for r in journal["run"]}
    assert (during["readiness-during-outage"], during["write-during-outage"]) == (503, 503)
    if expected:
        assert _unmet(journal, "after") == ["no-job-left-queued-or-running"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--target", "http://127.0.0.1:9", "--admin-token", ""], "--target needs --admin-token"),
        (
            [
                "--target",
                "http://127.0.0.1:9",
                "--admin-token",
                "t",
                "--service-env",
                "AUTO_RETRY_MAX=0",
            ],
            "--service-env",
        ),
        (
            ["--database", "postgresql", "--database-url", "sqlite+aiosqlite:///x.db"],
            "needs a server",
        ),
        (["--database-url", "postgresql+asyncpg://u@127.0.0.1/x"], "needs --database postgresql"),
        (["--service-env", "BGG_BREAKER_FAIL_MAX=0"], "BGG_BREAKER_FAIL_MAX"),
    ],
)
def test_stack_refuses_bad_arguments_before_starting_anything(
    args: list[str], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "stack.env"
    code = main(["stack", "--env-file", str(env_file), "--log-dir", str(tmp_path / "logs"), *args])
    assert code == 2
    assert reason in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no env file, no log folder: nothing started


def test_verdict_of_journals_chaos_toolkit_wrote(tmp_path: Path) -> None:
    """The verdict of each kind of journal (their shapes as chaostoolkit-lib 1.44 writes them)."""

    def journal(status: str, before: bool | None, after: bool | None, deviated: bool) -> Any:
        def state(met: bool | None) -> Any:
            if met is None:
                return None
            probe = {"activity": {"name": "p"}, "status": "succeeded", "tolerance_met": met}
            return {"steady_state_met": met, "probes": [probe]}

        states = {"before": state(before), "after": state(after), "during": []}
        return {"status": status, "deviated": deviated, "steady_states": states}

    assert verdict(journal("completed", True, True, False))[0] == 0
    assert verdict(journal("completed", True, False, True)) == (
        1, "deviated: probe 'p' failed after the method"
    )  # fmt: skip
    assert verdict(journal("completed", False, None, False))[0] == 2
    assert verdict(journal("failed", False, None, False))[0] == 2
    assert verdict(journal("interrupted", True, None, False))[0] == 2
    not_a_journal = tmp_path / "x.json"
    not_a_journal.write_text("[]")
    assert main(["verdict", str(not_a_journal)]) == 2


@pytest.mark.slow
def test_stack_with_target_starts_only_fakes_and_proxies(
    healthy: RunningStack, tmp_path: Path
) -> None:
    """`--target`: the healthy stack's service stands in for one the user started."""
    service = healthy.config()["CHAOS_SERVICE_URL"]
    bgg_port = free_port()
    with stack(tmp_path, "--target", service, "--bgg-port", str(bgg_port)) as running:
        config = running.config()
        assert config["CHAOS_SERVICE_URL"] == service
        printed = "\n".join(running.output)
        assert f"BGG_BASE_URL=http://127.0.0.1:{bgg_port}/xmlapi2" in printed
        assert TOKEN not in printed
        assert "system serve" not in printed
        answer = httpx.get(f"{config['CHAOS_BGG_CONTROL_URL']}/health", timeout=5)
        assert answer.status_code == 200
    # The target is someone else's: it still answers after the stack stopped.
    assert httpx.get(f"{service}/health", timeout=5).status_code == 200
