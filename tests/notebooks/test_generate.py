"""The generated data set holds what the story promises, made by the real service."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from chaos.service import HarnessError
from notebooks.generate import prepare
from notebooks.generate.scenario import running_service
from notebooks.reliability.chaos import breaker_transitions, load_chaos_events
from notebooks.reliability.errors import InputError
from notebooks.reliability.sentry_load import load_sentry
from tests.notebooks.support import Generated


@pytest.mark.slow
def test_the_tables(generated: Generated) -> None:
    assert generated.result.returncode == 0, generated.result.stderr[-2000:]
    with sqlite3.connect(generated.data / "bgg.db") as conn:
        types = dict(
            conn.execute(
                "SELECT error_type, COUNT(*) FROM background_task_failures GROUP BY 1"
            ).fetchall()
        )
        triggers = {
            t for (t,) in conn.execute('SELECT DISTINCT "trigger" FROM background_task_runs')
        }
        resolved = conn.execute(
            "SELECT COUNT(*) FROM background_task_failures WHERE resolved = 1"
        ).fetchone()[0]
        unresolved = conn.execute(
            "SELECT COUNT(*) FROM background_task_failures WHERE resolved = 0"
        ).fetchone()[0]
    assert {"CdnServerError", "ImageNotFound", "UnsupportedContentType", "ReadTimeout"} <= set(
        types
    )
    assert triggers == {"initial", "auto_retry", "manual_retry"}
    assert resolved > 0 and unresolved > 0


@pytest.mark.slow
def test_the_sentry_export_and_the_events(generated: Generated) -> None:
    events = load_sentry(generated.data / "sentry.jsonl")
    assert set(events["release"]) == {"4f0c2a1", "9b7e3d5"}
    assert {"BggTransientError", "BggUnavailable", "BggBadResponse"} <= set(
        events["exception_type"]
    )
    assert set(events["tags"].map(lambda t: t["bgg_breaker"])) >= {"closed", "open"}
    harness = load_chaos_events(generated.data / "events.jsonl")
    transitions = breaker_transitions(harness)
    for breaker in ("BGG API", "Image CDN"):
        states = set(transitions.loc[transitions["breaker"] == breaker, "to_state"])
        assert {"open", "closed"} <= states, breaker
    assert (harness["kind"] == "alert").any()
    manifest = json.loads((generated.data / "generated.json").read_text())
    assert manifest["imports"] > 0
    assert manifest["tests"] is None  # a JUnit report was given: no collection


def test_prepare_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine", "utf-8")
    with pytest.raises(InputError, match="refusing to overwrite"):
        prepare(tmp_path)
    assert (tmp_path / "keep.txt").exists()
    (tmp_path / "generated.json").write_text("{}", "utf-8")
    prepare(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_service_that_does_not_start_is_a_one_line_error_naming_its_log(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": "mysql://nowhere/db"}
    with (
        pytest.raises(HarnessError, match=r"exited during start-up: .+ \(log: .*service-1\.log\)"),
        running_service(env, 1, tmp_path),
    ):
        pass


def test_the_test_collection(tmp_path: Path) -> None:
    from notebooks.generate.tests import Collection

    (tmp_path / "tests" / "api").mkdir(parents=True)
    (tmp_path / "tests" / "api" / "test_a.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('x', [1, 2])\ndef test_a(x):\n    pass\n",
        "utf-8",
    )
    collection = Collection(tmp_path, tmp_path / "out.txt")
    count = collection.result(timeout=60)
    assert count is not None and count.collected == 2
    assert count.by_area == {"api": 2}
    skipped = Collection(tmp_path, tmp_path / "out2.txt", enabled=False)
    assert skipped.result() is None and "not collected" in skipped.note
