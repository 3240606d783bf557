"""`python -m notebooks`: bad input is one line and exit 2 before anything runs; a failing cell
is exit 1; the default run generates data with the real service and writes three reports."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from notebooks import cli
from notebooks.execute import CellError
from tests.notebooks.support import FIXTURES, Generated
from tests.support.waiting import eventually_sync


def run_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    """`python -m notebooks ARGS` in this process, with reports of its own (none by default),
    never this checkout's `reports/`."""
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    code = cli.main(["--reports-dir", str(reports), *args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "no such file or folder"),
        ("empty sentry", "is empty: expected at least one Sentry event"),
        ("issues list", "list of Sentry issues"),
        ("no tables", "has no background_task_failures table: expected the service's database"),
        ("unknown file", "cannot tell what it holds"),
        ("malformed csv", "record 2: created_at 'soon' is not a timestamp"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, expected: str
) -> None:
    target = tmp_path / "input"
    if setup == "empty sentry":
        target = tmp_path / "events.json"
        target.write_text("[]", "utf-8")
    elif setup == "issues list":
        target = tmp_path / "issues.json"
        target.write_text(json.dumps([{"shortId": "X-1", "count": "3", "firstSeen": "x"}]), "utf-8")
    elif setup == "no tables":
        target = tmp_path / "other.db"
        with sqlite3.connect(target) as conn:
            conn.execute("CREATE TABLE t (x)")
    elif setup == "unknown file":
        target = tmp_path / "notes.md"
        target.write_text("hello", "utf-8")
    elif setup == "malformed csv":
        target = tmp_path / "failures.csv"
        target.write_text("task_type,created_at\nt,2026-11-30\nt,soon\n", "utf-8")
    code, err = run_cli(capsys, tmp_path, "--data", str(target), "--output", str(tmp_path / "out"))
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("python -m notebooks: error: ")
    assert expected in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "generated", "x"], "'generated' cannot be mixed with paths"),
        (["--since", "soon"], "since: 'soon' is not an ISO-8601 time"),
        (["--bucket", "fortnight"], "bucket: 'fortnight' is not a width"),
        (["--chaos-dir", "/nonexistent"], "--chaos-dir /nonexistent: no such folder"),
        (["--reports-dir", "/nonexistent"], "--reports-dir /nonexistent: no such folder"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    sentry = tmp_path / "e.jsonl"
    sentry.write_text('{"eventID": "a", "dateCreated": "2026-11-30T00:00:00Z"}\n', "utf-8")
    base = [] if args[:1] == ["--data"] else ["--data", str(sentry)]
    code, err = run_cli(capsys, tmp_path, *base, *args, "--output", str(tmp_path / "out"))
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1


def _chaos_run(folder: Path, seed: int) -> Path:
    """A run folder as `python -m chaos run` leaves it (what the loaders need of it)."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"seed": seed, "scenarios": []}), "utf-8")
    event = {"time": "2026-12-01T00:00:00+00:00", "t": 0, "scenario": None, "kind": "upstreams"}
    (folder / "events.jsonl").write_text(json.dumps(event) + "\n", "utf-8")
    return folder


def _resolved(tmp_path: Path, *args: str) -> dict[str, object]:
    sentry = tmp_path / "e.jsonl"
    sentry.write_text('{"eventID": "a", "dateCreated": "2026-11-30T00:00:00Z"}\n', "utf-8")
    argv = ["--data", str(sentry), "--output", str(tmp_path / "out"), *args]
    return cli.resolve(cli.build_parser().parse_args(argv)).parameters()


def test_the_latest_chaos_run_is_read_unless_another_is_named(tmp_path: Path) -> None:
    runs = tmp_path / "reports" / "chaos"
    older = _chaos_run(runs / "20261201T000000Z-seed1-10-aaaa", 1)
    newer = _chaos_run(runs / "20261201T000001Z-seed2-11-bbbb", 2)
    (runs / "latest").symlink_to(newer.name)
    latest = runs / "latest"
    # By default (the reports folder), and for the folder of runs: the latest run.
    for args in (["--reports-dir", str(tmp_path / "reports")], ["--chaos-dir", str(runs)]):
        found = _resolved(tmp_path, *args)
        assert found["chaos_summary"] == str(latest / "summary.json"), args
        assert found["chaos_events"] == str(latest / "events.jsonl"), args
    # A run named by its folder, and the single folder of older versions.
    assert _resolved(tmp_path, "--chaos-dir", str(older))["chaos_summary"] == str(
        older / "summary.json"
    )
    flat = _chaos_run(tmp_path / "flat", 3)
    assert _resolved(tmp_path, "--chaos-dir", str(flat))["chaos_summary"] == str(
        flat / "summary.json"
    )
    # Nothing there: nothing read.
    (tmp_path / "empty").mkdir()
    assert _resolved(tmp_path, "--reports-dir", str(tmp_path / "empty"))["chaos_summary"] == ""


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--size", "huge"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err


def test_a_failing_cell_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(name: str, *_args: object, **_kwargs: object) -> None:
        raise CellError(f"{name}.ipynb: cell 3 (`x = 1 / 0`) failed: ZeroDivisionError: division")

    monkeypatch.setattr(cli, "run", failing)
    sentry = tmp_path / "e.jsonl"
    sentry.write_text('{"eventID": "a", "dateCreated": "2026-11-30T00:00:00Z"}\n', "utf-8")
    code, err = run_cli(
        capsys,
        tmp_path,
        "--data",
        str(sentry),
        "--only",
        "sentry_analysis",
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 1
    assert err == (
        "python -m notebooks: sentry_analysis.ipynb: cell 3 (`x = 1 / 0`) failed: "
        "ZeroDivisionError: division\n"
    )


@pytest.mark.slow
def test_the_report_measures_mttd_from_a_chaos_toolkit_journal_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = FIXTURES / "chaostoolkit" / "journal-ok.json"
    out = tmp_path / "out"
    code, err = run_cli(
        capsys,
        tmp_path,
        "--data",
        str(journal),
        "--only",
        "reliability_report",
        "--output",
        str(out),
    )
    assert code == 0, err
    metrics = {m["metric"]: m for m in json.loads((out / "success_metrics.json").read_text())}
    opened = metrics["MTTD: fault to breaker open"]
    assert opened["passed"] is True and 0 < opened["value"] < 0.01
    assert opened["source"].startswith("chaos journal (worst: BGG outage opens the breaker")
    assert "upper bound" in opened["source"]
    assert metrics["MTTD: fault to alert"]["value"] is None


@pytest.mark.slow
def test_the_default_run_writes_three_reports_with_figures(generated: Generated) -> None:
    result = generated.result
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("failure_analysis", "sentry_analysis", "reliability_report"):
        html = (generated.output / f"{name}.html").read_text("utf-8")
        assert html.count("data:image/png;base64,") >= 3, name
        assert "Traceback" not in html
        notebook = json.loads((generated.output / f"{name}.ipynb").read_text("utf-8"))
        errors = [
            o
            for c in notebook["cells"]
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, name
    summary = json.loads((generated.output / "failure_summary.json").read_text())
    assert summary["failures"] > 0 and summary["runs"] > 0
    metrics = {
        m["metric"]: m for m in json.loads((generated.output / "success_metrics.json").read_text())
    }
    assert metrics["background task success"]["value"] is not None
    assert metrics["MTTD: fault to breaker open"]["value"] is not None
    assert metrics["tests"]["value"] == 3  # the JUnit report the fixture passed
    assert metrics["tests"]["passed"] is True
    assert "reports in" in result.stdout


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


@pytest.mark.slow
def test_sigterm_stops_everything_it_started(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.notebooks.support import REPO

    command = [sys.executable, "-m", "notebooks", "--output", str(tmp_path / "out")]
    process = subprocess.Popen(
        [*command, "--reports-dir", str(tmp_path)],  # none of this checkout's reports/
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "healthy imports" in line:  # the service and the test collection are running
            break
    else:
        _out, err = process.communicate(timeout=60)
        pytest.fail(f"the generator ended before it started the service: {err}")
    children = descendants(process.pid)
    assert children, "the generator never started the service"
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    # Children may take a moment to be reaped after the parent returned: poll, bounded.
    eventually_sync(
        lambda: {pid for pid in children if Path(f"/proc/{pid}").exists()},
        "every process the generator started to be gone",
        until=lambda alive: not alive,
    )
