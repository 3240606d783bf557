"""Which data the notebooks read: a `DataSet`, built from paths by looking at what they hold.

`python -m notebooks PATH...` accepts files and folders in any order; each file is recognised
by its content (not only its name):

| what | recognised by |
|---|---|
| the service's database | a SQLite file (`SQLite format 3` header), or `--database-url` |
| failure table export | CSV whose header has `task_type` and `created_at` |
| run table export | CSV whose header has `outcome` and `started_at` |
| Sentry export | JSON lines with `eventID`; JSON event(s); a Discover CSV (id + timestamp) |
| chaos summary | JSON with `scenarios` (`summary.json` of `python -m chaos run`) |
| chaos journal | JSON with `journals`, or `experiment` + `run` (Chaos Toolkit) |
| harness events | JSON lines with `kind` and `time` (`events.jsonl`) |
| load run | `*_stats.csv` (Locust) or JSON with `thresholds` and `error_rate`: its folder |
| test report | JUnit XML, `tests.json`, or saved `pytest --collect-only -q` output (`.txt`) |

A folder is searched one level deep (so `reports/` finds `chaos/` and `load/`); a folder of
chaos runs (`reports/chaos`) means its latest run (`reports/chaos/latest`). A file that is
none of these is an `InputError` that lists what is accepted.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notebooks.reliability.errors import InputError
from notebooks.reliability.paths import REPO, run_folder

ACCEPTED = (
    "expected a SQLite database, a CSV export of background_task_failures or "
    "background_task_runs, a Sentry export (.jsonl, .json, Discover .csv), a chaos "
    "summary.json / journal.json / events.jsonl, a Locust *_stats.csv or load summary.json, "
    "or a JUnit XML / tests.json"
)


@dataclass
class DataSet:
    """Paths (as text, "" when absent) the notebooks get as parameters."""

    database_url: str = ""
    failures_csv: str = ""
    runs_csv: str = ""
    sentry_paths: list[str] = field(default_factory=list)
    events_path: str = ""
    chaos_summary: str = ""
    chaos_journal: str = ""
    chaos_events: str = ""
    load_dir: str = ""
    tests_path: str = ""
    generated: bool = False

    def parameters(self) -> dict[str, Any]:
        """The notebooks' data-source parameters."""
        return {
            "database_url": self.database_url,
            "failures_csv": self.failures_csv,
            "runs_csv": self.runs_csv,
            "sentry_paths": list(self.sentry_paths),
            "events_path": self.events_path or self.chaos_events,
            "chaos_summary": self.chaos_summary,
            "chaos_journal": self.chaos_journal,
            "chaos_events": self.chaos_events,
            "load_dir": self.load_dir,
            "tests_path": self.tests_path,
        }

    def describe(self) -> list[str]:
        """One line per source, for the command line's output."""
        lines = []
        for name, value in self.parameters().items():
            if value:
                shown = ", ".join(value) if isinstance(value, list) else value
                lines.append(f"  {name}: {shown}")
        return lines


def _head(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _csv_header(path: Path) -> list[str]:
    text = _head(path).decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text.strip() else ""
    return [h.strip() for h in next(csv.reader([first]), [])]


def _first_json_line(path: Path) -> Any:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.strip():
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    return None
    return None


def classify(path: Path) -> str:
    """What `path` holds: `database`, `failures_csv`, `runs_csv`, `sentry`, `chaos_summary`,
    `chaos_journal`, `chaos_events`, `load`, `tests`; `InputError` otherwise."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    head = _head(path)
    if not head.strip():
        raise InputError(f"{path} is empty: {ACCEPTED}")
    suffix = path.suffix.lower()
    if head.startswith(b"SQLite format 3\x00"):
        return "database"
    if suffix == ".xml" or head.lstrip().startswith(b"<"):
        return "tests"
    if suffix == ".csv":
        header = {h.lower() for h in _csv_header(path)}
        if {"task_type", "created_at"} <= header:
            return "failures_csv"
        if {"outcome", "started_at"} <= header:
            return "runs_csv"
        if {"name", "request count"} <= header or {"occurrences", "error"} <= header:
            return "load"
        if header & {"id", "event_id", "eventid"} and header & {"timestamp", "datecreated"}:
            return "sentry"
        raise InputError(
            f"{path}: a CSV with the columns {', '.join(sorted(header)[:8])}: {ACCEPTED}"
        )
    if suffix in (".jsonl", ".ndjson"):
        first = _first_json_line(path)
        if isinstance(first, dict) and "kind" in first and "time" in first:
            return "chaos_events"
        if isinstance(first, dict) and ({"eventID", "event_id", "id"} & set(first)):
            return "sentry"
        raise InputError(
            f"{path}: JSON lines that are neither events nor harness events: {ACCEPTED}"
        )
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not JSON ({exc}): {ACCEPTED}") from None
        if isinstance(data, dict):
            if "journals" in data or ("experiment" in data and "run" in data):
                return "chaos_journal"
            if isinstance(data.get("scenarios"), list):
                return "chaos_summary"
            if "thresholds" in data and "error_rate" in data:
                return "load"
            if isinstance(data.get("collected"), int):
                return "tests"
            if isinstance(data.get("data"), list) or {"eventID", "event_id"} & set(data):
                return "sentry"
        if isinstance(data, list):
            # A list of events, or of something else (a Sentry issues list, say), which the
            # Sentry loader refuses with its own message.
            return "sentry"
        raise InputError(f"{path}: a JSON object of no known kind: {ACCEPTED}")
    if suffix == ".txt" and b"collected" in _head(path, 1 << 20):
        return "tests"
    raise InputError(f"{path}: cannot tell what it holds: {ACCEPTED}")


def _add(data: DataSet, kind: str, path: Path) -> None:
    text = str(path)
    if kind == "database":
        data.database_url = f"sqlite+aiosqlite:///{path.resolve()}"
    elif kind == "sentry":
        data.sentry_paths.append(text)
    elif kind == "load":
        data.load_dir = str(path.parent)
    else:  # failures_csv, runs_csv, chaos_summary, chaos_journal, chaos_events, tests
        setattr(data, "tests_path" if kind == "tests" else kind, text)


def _scan(folder: Path, data: DataSet, *, depth: int) -> int:
    found = 0
    for entry in sorted(run_folder(folder).iterdir()):
        if entry.name.startswith(".") or entry.name == "logs":
            continue
        if entry.is_dir():
            if depth > 0:
                found += _scan(entry, data, depth=depth - 1)
            continue
        if entry.suffix.lower() not in (
            ".db",
            ".sqlite",
            ".sqlite3",
            ".csv",
            ".json",
            ".jsonl",
            ".ndjson",
            ".xml",
        ):
            continue
        if entry.name.startswith("journal-"):  # one scenario's copy of journal.json
            continue
        try:
            kind = classify(entry)
        except InputError:
            continue  # inside a folder, files we do not know are skipped
        _add(data, kind, entry)
        found += 1
    return found


def from_paths(paths: list[str]) -> DataSet:
    """A `DataSet` from files and folders (see the module docstring)."""
    data = DataSet()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if _scan(path, data, depth=1) == 0:
                raise InputError(f"{path} holds nothing the notebooks can read: {ACCEPTED}")
        elif path.is_file():
            _add(data, classify(path), path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return data


#: The reports of a chaos run's folder, by the `DataSet` attribute each fills.
_CHAOS_FILES = {
    "chaos_summary": "summary.json",
    "chaos_journal": "journal.json",
    "chaos_events": "events.jsonl",
}


def chaos_reports(folder: Path) -> dict[str, str]:
    """The `_CHAOS_FILES` that a chaos run's folder (or a folder of runs: its latest) holds."""
    run = run_folder(folder)
    return {key: str(run / name) for key, name in _CHAOS_FILES.items() if (run / name).is_file()}


def reports_dir(data: DataSet, reports: Path) -> None:
    """Fill what `data` lacks from the harness's own reports (the latest chaos run,
    `reports/chaos/latest`, and `reports/load`) when they are there."""
    for attribute, path in chaos_reports(reports / "chaos").items():
        if not getattr(data, attribute):
            setattr(data, attribute, path)
    load = reports / "load"
    if not data.load_dir and ((load / "summary.json").is_file() or any(load.glob("*_stats.csv"))):
        data.load_dir = str(load)


#: A data parameter left at this value reads the newest runs (see `latest`).
LATEST = "latest"
#: The folder `latest` looks in, when not the repository's `reports/` (`nox -s lab` sets it).
REPORTS_ENV = "NOTEBOOKS_REPORTS_DIR"


def default_reports() -> Path:
    """The reports folder the notebooks read by default: `$NOTEBOOKS_REPORTS_DIR`, else the
    repository's `reports/`."""
    configured = os.environ.get(REPORTS_ENV, "").strip()
    return Path(configured) if configured else REPO / "reports"


def latest(reports: Path | None = None) -> DataSet:
    """The newest data the harness left in `reports` (default `default_reports()`): the
    data set `python -m notebooks` generated last (`notebooks/data/`: its database, Sentry
    export, events and test count), the latest chaos run (`chaos/latest/`) and the load run
    (`load/`). What is not there stays empty ("not available" in the notebooks)."""
    folder = reports if reports is not None else default_reports()
    data = DataSet()
    generated = folder / "notebooks" / "data"
    if generated.is_dir():
        try:
            data = from_paths([str(generated)])
        except InputError:
            data = DataSet()  # a half-written data set is no data set
        # As the command line has it: the generator's events describe its data set.
        data.events_path, data.chaos_events = data.chaos_events, ""
        data.generated = bool(data.database_url)
    if folder.is_dir():
        reports_dir(data, folder)
    return data


def resolve_latest(**values: Any) -> tuple[Any, ...]:
    """The notebook parameters `values` (by name, as in `DataSet.parameters`), those left at
    `LATEST` replaced by what `latest()` found ("" or [] when nothing), in the order given.

    A notebook opened in JupyterLab after `nox -s chaos` or `nox -s notebooks` so shows those
    runs without any parameter set; the command line injects its own values instead."""
    wanted = [name for name, value in values.items() if _is_latest(value)]
    found = latest().parameters() if wanted else {}
    return tuple(found[name] if name in wanted else value for name, value in values.items())


def _is_latest(value: object) -> bool:
    if isinstance(value, list):
        return value == [LATEST]
    return value == LATEST
