"""The notebooks' small helpers: sources from parameters, relative paths, display formatting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from notebooks.reliability import show, sources
from notebooks.reliability.db import safe_url
from notebooks.reliability.errors import InputError
from notebooks.reliability.paths import REPO, locate


def test_empty_parameters_mean_no_source() -> None:
    assert sources.task_tables() is None
    assert sources.sentry_events([]) is None
    assert sources.sentry_events("") is None
    assert sources.chaos_events("") is None
    assert sources.chaos_summary("") is None
    assert sources.chaos_journal("") is None
    assert sources.load_results("") is None
    assert sources.test_count("") is None
    with pytest.raises(InputError, match="runs_csv without failures_csv"):
        sources.task_tables(runs_csv="runs.csv")


def test_relative_paths_point_into_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert locate("fixtures/sentry") == REPO / "fixtures" / "sentry"
    (tmp_path / "here.txt").write_text("x", "utf-8")
    assert locate("here.txt") == Path("here.txt")
    events = sources.sentry_events(["fixtures/sentry"])
    assert events is not None and len(events) == 2
    journal = sources.chaos_journal("fixtures/chaostoolkit/journal-ok.json")
    assert journal is not None
    # Relative: in the repository (here a stand-in, so the checkout gets no folder).
    monkeypatch.setattr(sources, "REPO", tmp_path / "repo")
    assert sources.output_folder("reports/x") == tmp_path / "repo" / "reports" / "x"
    assert (tmp_path / "repo" / "reports" / "x").is_dir()
    assert sources.output_folder(str(tmp_path / "out")).is_dir()


def test_safe_url_hides_the_password() -> None:
    assert (
        safe_url("postgresql+asyncpg://u:secret@h:5432/db")
        == "postgresql+asyncpg://u:***@h:5432/db"
    )
    assert safe_url("::") == "<not a URL>"


def test_display_helpers() -> None:
    frame = pd.DataFrame(
        {
            "share": [0.5, None],
            "seconds": [90.0, None],
            "at": pd.Series([pd.Timestamp("2026-11-30 10:00", tz="UTC"), pd.NaT]),
        }
    )
    assert show.percent(frame, ["share"])["share"].tolist() == ["50.0%", "n/a"]
    assert show.durations(frame, ["seconds"])["seconds"].tolist() == ["90.0 s", "n/a"]
    assert show.times(frame, ["at"])["at"].tolist() == ["2026-11-30 10:00:00 UTC", ""]
    assert frame["share"].tolist()[0] == 0.5  # the input is not changed
