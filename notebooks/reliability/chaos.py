"""The chaos harness's reports: `summary.json`, `journal.json` and `events.jsonl`.

`python -m chaos run` writes them to a folder per run, `reports/chaos/<run>/`, and points
`reports/chaos/latest` at the run that finished last (see docs/chaos.md); a folder of runs
means its `latest` (`run_folder`), and the single folder older versions wrote still reads.
The data generator of `python -m notebooks` writes an `events.jsonl` of the same layout for
the outages it causes. A plain Chaos Toolkit journal (one experiment, as in
`fixtures/chaostoolkit/`) is read as a run of one scenario.

From the events: the breakers' transitions (with the service's own timestamps when the event
has them), outage windows (a breaker open, through half-open, until closed again, for
shading timelines), fault windows, and the time to detection: from a fault switched on to the
first breaker opening (and the first alert firing) after it.

From a journal alone (any Chaos Toolkit journal, `journal_detection`): the time to detection
per experiment, from the start of the first method action (the fault) to the first method or
during probe whose output records the breaker open or an alert fired.

`journal.json` of `python -m chaos run` is read in any of its layouts: with `journals` (one
journal per scenario; the older wrapper, or the run-wide Chaos Toolkit journal that carries
them too), which are read; a run-wide Chaos Toolkit journal without them, next to the run's
per-scenario `journal-<scenario>.json` files, which are then read instead; or that journal
alone, one experiment whose activities keep the `scenario` each result is marked with. A
folder means its `journal-*.json` files (else its `journal.json`); a folder of runs, its
latest run's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from notebooks.reliability.errors import InputError, MalformedRowError, json_lines
from notebooks.reliability.paths import run_folder
from notebooks.reliability.timeutil import UTC_DTYPE, utc_series

#: The columns of the events frame that are lifted out of each event.
EVENT_FIELDS = ("breaker", "from_state", "to_state", "at", "fault", "on", "rule", "status")


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected {what})")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise InputError(f"{path} is empty: expected {what}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not JSON ({exc.msg} at line {exc.lineno}): expected {what}"
        ) from None


def load_chaos_summary(path: str | Path) -> pd.DataFrame:
    """`summary.json` as one row per scenario: `scenario`, `backend`, `verdict`, `held`,
    `total`, `duration_s`, `fault`, `reason`, every figure (`mttd_open_s`, `mttd_alert_s`,
    `rejection_p99_ms`, `public_error_rate`, `task_success_rate`, ...) and the set checker's
    counts as `tasks_*`. `attrs` holds the run's `seed`, `exit_code`, `verdict`, `git`."""
    path = Path(path)
    what = "summary.json from `python -m chaos run` (with a scenarios list)"
    data = _read_json(path, what)
    if not isinstance(data, Mapping) or not isinstance(data.get("scenarios"), list):
        raise InputError(f"{path} is not a chaos summary: expected {what}")
    rows = []
    for index, scenario in enumerate(data["scenarios"], 1):
        if not isinstance(scenario, Mapping) or "verdict" not in scenario:
            raise MalformedRowError(str(path), f"scenario {index}", "has no verdict")
        row: dict[str, Any] = {
            "scenario": scenario.get("scenario") or scenario.get("name"),
            "backend": scenario.get("backend"),
            "verdict": scenario.get("verdict"),
            "held": scenario.get("held"),
            "total": scenario.get("total"),
            "duration_s": scenario.get("duration_s"),
            "fault": scenario.get("fault"),
            "reason": scenario.get("reason"),
        }
        for key, value in (scenario.get("figures") or {}).items():
            if isinstance(value, int | float | str | bool) or value is None:
                row[key] = value
        for key, value in (scenario.get("tasks") or {}).items():
            if isinstance(value, int | float | bool) or value is None:
                row[f"tasks_{key}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs.update(
        {k: data.get(k) for k in ("seed", "exit_code", "verdict", "git", "started", "finished")}
    )
    return frame


JOURNAL_WHAT = "a Chaos Toolkit journal (journal.json)"


def _journals(data: Mapping[str, Any], path: Path) -> Iterator[Mapping[str, Any]]:
    if isinstance(data.get("journals"), list):
        yield from (j for j in data["journals"] if isinstance(j, Mapping))
    elif "experiment" in data and "run" in data:
        yield data
    else:
        raise InputError(
            f"{path} is not a Chaos Toolkit journal: expected `experiment` and `run` (one "
            "experiment) or `journals` (a `python -m chaos run` journal)"
        )


def _scenario_journals(folder: Path) -> list[Path]:
    """The per-scenario journals `python -m chaos run` writes next to `journal.json`."""
    return sorted(p for p in folder.glob("journal-*.json") if p.is_file())


def _journal_documents(path: Path) -> list[tuple[Path, Mapping[str, Any]]]:
    """(file, journal) for every experiment `path` stands for (see the module docstring)."""
    if path.is_dir():
        path = run_folder(path)
        files = _scenario_journals(path) or [path / "journal.json"]
        if not files[0].is_file():
            raise InputError(
                f"{path} holds no journal-*.json or journal.json: expected {JOURNAL_WHAT}"
            )
        return [doc for f in files for doc in _journal_documents(f)]
    data = _read_json(path, JOURNAL_WHAT)
    if not isinstance(data, Mapping):
        raise InputError(f"{path} is not a Chaos Toolkit journal: expected a JSON object")
    if not isinstance(data.get("journals"), list) and not path.name.startswith("journal-"):
        siblings = _scenario_journals(path.parent)
        if siblings and "experiment" in data and "run" in data:
            # A run-wide journal: its scenarios are the journals beside it.
            return [doc for s in siblings for doc in _journal_documents(s)]
    return [(path, journal) for journal in _journals(data, path)]


def _activities(journal: Mapping[str, Any], scenario: str) -> Iterator[dict[str, Any]]:
    steady = journal.get("steady_states") or {}
    for phase in ("before", "during", "after"):
        # `before`/`after` are one steady-state check ({"probes": [...]}); `during` is a list,
        # of probe results (ours) or of such checks (Chaos Toolkit's, when it has any).
        checks = steady.get(phase) or []
        for check in checks if isinstance(checks, list) else [checks]:
            if not isinstance(check, Mapping):
                continue
            probes = check.get("probes") if "probes" in check else [check]
            for probe in probes or []:
                if isinstance(probe, Mapping):
                    yield _activity(probe, scenario, phase)
    for item in journal.get("run") or []:
        yield _activity(item, scenario, "method")
    for item in journal.get("rollbacks") or []:
        yield _activity(item, scenario, "rollback")


def _activity(item: Mapping[str, Any], scenario: str, phase: str) -> dict[str, Any]:
    # A run-wide journal of `python -m chaos run` marks each result with its `scenario` and
    # names its activities `<scenario>: <name>`.
    activity = item.get("activity") or {}
    scenario = str(item.get("scenario") or scenario)
    name = activity.get("name")
    if isinstance(name, str) and item.get("scenario") and name.startswith(f"{scenario}: "):
        name = name[len(scenario) + 2 :]
    return {
        "scenario": scenario,
        "phase": phase,
        "name": name,
        "type": activity.get("type"),
        "status": item.get("status"),
        "tolerance_met": item.get("tolerance_met"),
        "start": item.get("start"),
        "end": item.get("end"),
        "duration_s": item.get("duration"),
        "output": item.get("output"),
    }


ACTIVITY_COLUMNS = (
    "scenario",
    "phase",
    "name",
    "type",
    "status",
    "tolerance_met",
    "start",
    "end",
    "duration_s",
    "output",
)


def load_chaos_journal(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A journal (or a run's per-scenario journals) as (experiments, activities).

    experiments: one row per scenario (`scenario`, `title`, `status`, `deviated`, `start`,
    `end`, `duration_s`); activities: every probe and action (`scenario`, `phase`
    before/during/after/method/rollback, `name`, `type`, `status`, `tolerance_met`, `start`,
    `end`, `duration_s`, `output` as the journal has it), times aware UTC.
    """
    path = Path(path)
    experiments = []
    activities: list[dict[str, Any]] = []
    sources: list[str] = []
    for source, journal in _journal_documents(path):
        experiment = journal.get("experiment") or {}
        scenario = str(journal.get("scenario") or experiment.get("title") or "experiment")
        experiments.append(
            {
                "scenario": scenario,
                "title": experiment.get("title"),
                "status": journal.get("status"),
                "deviated": journal.get("deviated"),
                "start": journal.get("start"),
                "end": journal.get("end"),
                "duration_s": journal.get("duration"),
            }
        )
        found = list(_activities(journal, scenario))
        activities.extend(found)
        sources.extend([str(source)] * len(found))
    exp = pd.DataFrame(
        experiments,
        columns=["scenario", "title", "status", "deviated", "start", "end", "duration_s"],
    )
    act = pd.DataFrame(activities, columns=list(ACTIVITY_COLUMNS))
    where = pd.Series(sources, index=act.index, dtype=object)
    for frame, labels in (
        (exp, "scenario " + exp["scenario"].astype(str)),
        (act, where + " activity " + act["name"].astype(str)),
    ):
        for column in ("start", "end"):
            frame[column] = utc_series(
                frame[column],
                source=str(path) if frame is exp else "",
                column=column,
                labels=labels,
            )
    exp.attrs["source"] = str(path)
    return exp, act


def load_chaos_events(path: str | Path) -> pd.DataFrame:
    """`events.jsonl` as a frame: `time` (aware UTC), `t`, `scenario`, `kind`, the fields in
    `EVENT_FIELDS` as columns (`at` parsed) and `data` (the whole event). Oldest first."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected events.jsonl from `python -m chaos run`)")
    rows: list[dict[str, Any]] = []
    wheres: list[str] = []
    for number, event in json_lines(path):
        if not isinstance(event, Mapping) or "kind" not in event or "time" not in event:
            raise MalformedRowError(
                str(path), f"line {number}", "is not a harness event (needs kind and time)"
            )
        row = {
            "time": event["time"],
            "t": event.get("t"),
            "scenario": event.get("scenario"),
            "kind": event["kind"],
        }
        row.update({key: event.get(key) for key in EVENT_FIELDS})
        row["data"] = dict(event)
        rows.append(row)
        wheres.append(f"line {number}")
    if not rows:
        raise InputError(f"{path} is empty: expected harness events, one JSON object per line")
    frame = pd.DataFrame(rows)
    labels = pd.Series(wheres, index=frame.index)
    frame["time"] = utc_series(frame["time"], source=str(path), column="time", labels=labels)
    frame["at"] = utc_series(frame["at"], source=str(path), column="at", labels=labels)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def breaker_transitions(events: pd.DataFrame) -> pd.DataFrame:
    """Breaker transitions: `scenario`, `breaker`, `from_state`, `to_state`, `at` (the
    service's time when the event has it, else when the harness saw it)."""
    columns = ["scenario", "breaker", "from_state", "to_state", "at"]
    if events.empty:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in columns}).astype({"at": UTC_DTYPE})
    part = events[events["kind"] == "breaker_transition"].copy()
    part["at"] = part["at"].fillna(part["time"])
    part = part.sort_values("at", kind="stable")
    return part[columns].reset_index(drop=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def outage_windows(transitions: pd.DataFrame, *, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """When each breaker was not closed: from opening until it closed again (half-open and
    re-opening stay inside one window). A window still open at the end of the data lasts
    until `end` (default: the last transition) and is marked `open_ended`.

    Columns `scenario`, `breaker`, `start`, `end`, `duration_s`, `open_ended`.
    """
    columns = ["scenario", "breaker", "start", "end", "duration_s", "open_ended"]
    rows: list[dict[str, Any]] = []
    opened: dict[tuple[str, str], Any] = {}
    ordered = transitions.sort_values("at", kind="stable") if len(transitions) else transitions
    for row in _records(ordered):
        key = (str(row["scenario"] or ""), str(row["breaker"]))
        if row["to_state"] == "open" and key not in opened:
            opened[key] = row["at"]
        elif row["to_state"] == "closed" and key in opened:
            rows.append(_window(key, opened.pop(key), row["at"], open_ended=False))
    last = end if end is not None else (transitions["at"].max() if len(transitions) else None)
    for key, start in opened.items():
        rows.append(
            _window(key, start, max(last, start) if last is not None else start, open_ended=True)
        )
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("start", "end"):
        frame[column] = frame[column].astype(UTC_DTYPE)
    return frame.astype({"duration_s": "float64", "open_ended": "bool"})


def _window(key: tuple[str, str], start: Any, end: Any, *, open_ended: bool) -> dict[str, Any]:
    return {
        "scenario": key[0] or None,
        "breaker": key[1],
        "start": start,
        "end": end,
        "duration_s": (end - start).total_seconds(),
        "open_ended": open_ended,
    }


def fault_windows(events: pd.DataFrame) -> pd.DataFrame:
    """When each fault was on: `scenario`, `fault`, `start`, `end` (NaT if never switched off
    in the data). A `fault` event named `all` with `on` false ends every open fault."""
    columns = ["scenario", "fault", "start", "end"]
    rows: list[dict[str, Any]] = []
    started: dict[tuple[str, str], Any] = {}
    faults = events[events["kind"] == "fault"] if len(events) else events
    for row in _records(faults):
        scenario, name = str(row["scenario"] or ""), str(row["fault"])
        if row["on"]:
            started.setdefault((scenario, name), row["time"])
            continue
        ending = [k for k in started if k[0] == scenario and (name == "all" or k[1] == name)]
        for key in ending:
            rows.append(
                {"scenario": key[0], "fault": key[1], "start": started.pop(key), "end": row["time"]}
            )
    for (scenario, name), start in started.items():
        rows.append({"scenario": scenario, "fault": name, "start": start, "end": pd.NaT})
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("start", "end"):
        frame[column] = frame[column].astype(UTC_DTYPE)
    return frame.sort_values("start", kind="stable").reset_index(drop=True)


#: Which breaker a fault can open, by the fault's name (the harness's and the generator's
#: names start with the dependency: `bgg-503`, `cdn-refused`, ...).
FAULT_BREAKERS = {"bgg": "BGG API", "cdn": "Image CDN"}


def breaker_of(fault: str) -> str | None:
    """The breaker a fault named `fault` can open, or None when it could open any."""
    return FAULT_BREAKERS.get(fault.split("-", 1)[0].lower())


def _responsible(faults: list[dict[str, Any]], at: Any, breaker: str | None) -> int | None:
    """The index of the fault an event at `at` is attributed to: the latest one switched on
    before it that could have caused it (matching breaker)."""
    chosen = None
    for index, fault in enumerate(faults):
        if fault["start"] > at:
            break
        target = breaker_of(str(fault["fault"]))
        if breaker is None or target is None or target == breaker:
            chosen = index
    return chosen


def detection_times(events: pd.DataFrame, *, grace_s: float = 60.0) -> pd.DataFrame:
    """Time to detection per fault: from the fault switched on to the first breaker opening
    attributed to it (`mttd_open_s`, with the breaker's name), and to the first alert firing
    attributed to it (`mttd_alert_s`, events of kind `alert`, with its `rule`).

    An opening (or alert) is attributed to the latest fault of the same scenario switched on
    before it whose name matches the breaker (`bgg-*` the BGG API breaker, `cdn-*` the Image
    CDN breaker; other names any), if the fault was still on or ended less than `grace_s`
    before. NaN when nothing was attributed to a fault.
    """
    columns = [
        "scenario",
        "fault",
        "fault_start",
        "breaker",
        "mttd_open_s",
        "alert",
        "mttd_alert_s",
    ]
    faults = fault_windows(events)
    rows: list[dict[str, Any]] = [
        {
            "scenario": f["scenario"],
            "fault": f["fault"],
            "fault_start": f["start"],
            "end": f["end"],
            "breaker": None,
            "mttd_open_s": None,
            "alert": None,
            "mttd_alert_s": None,
        }
        for f in _records(faults)
    ]
    transitions = breaker_transitions(events)
    opens = _records(transitions[transitions["to_state"] == "open"])
    alerts: list[dict[str, Any]] = []
    if not events.empty:
        firing = events[(events["kind"] == "alert") & (events["status"] == "firing")]
        alerts = _records(firing.assign(at=firing["at"].fillna(firing["time"])))
    grace = pd.Timedelta(seconds=grace_s)
    for kind, items in (("open", opens), ("alert", alerts)):
        for item in sorted(items, key=lambda i: i["at"]):
            scenario = str(item["scenario"] or "")
            same = [r for r in rows if r["scenario"] == scenario]
            breaker = str(item["breaker"]) if kind == "open" else None
            index = _responsible(
                [{"start": r["fault_start"], "fault": r["fault"]} for r in same],
                item["at"],
                breaker,
            )
            if index is None:
                continue
            row = same[index]
            if pd.notna(row["end"]) and item["at"] > row["end"] + grace:
                continue
            seconds = (item["at"] - row["fault_start"]).total_seconds()
            if kind == "open" and row["mttd_open_s"] is None:
                row["breaker"], row["mttd_open_s"] = item["breaker"], seconds
            elif kind == "alert" and row["mttd_alert_s"] is None:
                row["alert"], row["mttd_alert_s"] = item["rule"], seconds
    frame = pd.DataFrame(rows, columns=[*columns, "end"])[columns]
    frame["fault_start"] = frame["fault_start"].astype(UTC_DTYPE)
    return frame.astype({"mttd_open_s": "float64", "mttd_alert_s": "float64"})


#: Output keys of a probe that say the breaker was seen open (`{"state": "open"}`,
#: `{"open": true}`, `{"opened": true}`, `{"states": ["open", "open"]}`), and an alert fired.
_OPEN_FLAGS = ("open", "opened")
_ALERT_FLAGS = ("fired", "firing")


def records_open(output: object) -> bool:
    """Whether a probe's output records a breaker seen open: the output `"open"` itself (a
    breaker-state probe, as in Chaos Toolkit's examples), or an object with `state` "open",
    `open` / `opened` true, or `states` (one per worker) that include "open"."""
    if isinstance(output, str):
        return output.strip().lower() == "open"
    if not isinstance(output, Mapping):
        return False
    if isinstance(output.get("state"), str) and output["state"].strip().lower() == "open":
        return True
    if any(output.get(flag) is True for flag in _OPEN_FLAGS):
        return True
    states = output.get("states")
    if isinstance(states, Mapping):
        states = list(states.values())
    return isinstance(states, list | tuple) and "open" in [str(v).lower() for v in states]


def records_alert(output: object) -> bool:
    """Whether a probe's output records an alert fired (`fired` / `firing` exactly true)."""
    return isinstance(output, Mapping) and any(output.get(flag) is True for flag in _ALERT_FLAGS)


def _instant(value: object) -> pd.Timestamp | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        stamp: object = pd.Timestamp(value.strip())
    except ValueError:
        return None
    if not isinstance(stamp, pd.Timestamp):  # NaT
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


JOURNAL_DETECTION_COLUMNS = (
    "scenario",
    "fault",
    "fault_start",
    "breaker",
    "mttd_open_s",
    "open_probe",
    "open_basis",
    "alert",
    "mttd_alert_s",
    "alert_basis",
)


def journal_detection(activities: pd.DataFrame) -> pd.DataFrame:
    """Time to detection per experiment from a journal's activities (`load_chaos_journal`).

    The fault starts with the first action of the method (its `start`); an experiment whose
    method has no action has no fault start and no row. Detection is the first probe of the
    method or of the steady state *during* it (started at or after the fault) whose output
    records the breaker open (`records_open`) or an alert fired (`records_alert`):

    - `mttd_open_s`: to the output's `opened_at` (the service's time, `open_basis`
      "opened_at") when the output has one, else to the probe's `end` (`open_basis`
      "probe end": when the probe had seen it open, an upper bound);
    - `mttd_alert_s`: the output's own `mttd_alert_s` when it has one (`alert_basis`
      "measured"), else to the probe's `end`.

    Columns `JOURNAL_DETECTION_COLUMNS`: `breaker` is the breaker the fault's name points to
    (`breaker_of`; None when it could be any), `open_probe` / `alert` the probes' names.
    """
    rows: list[dict[str, Any]] = []
    if len(activities):
        for scenario, part in activities.groupby("scenario", sort=False):
            part = part.sort_values("start", kind="stable")
            actions = part[(part["phase"] == "method") & (part["type"] == "action")]
            actions = actions[actions["start"].notna()]
            if actions.empty:
                continue
            fault = actions.iloc[0]
            start = fault["start"]
            probes = part[
                part["phase"].isin(["method", "during"])
                & (part["type"] == "probe")
                & (part["start"] >= start)
            ]
            row: dict[str, Any] = dict.fromkeys(JOURNAL_DETECTION_COLUMNS)
            row.update(
                scenario=str(scenario),
                fault=fault["name"],
                fault_start=start,
                breaker=breaker_of(str(fault["name"] or "")),
            )
            for probe in _records(probes.sort_values("end", kind="stable")):
                output = probe["output"]
                if row["mttd_open_s"] is None and records_open(output):
                    opened = (
                        _instant(output.get("opened_at")) if isinstance(output, Mapping) else None
                    )
                    seen = opened if opened is not None else probe["end"]
                    if pd.notna(seen):
                        row.update(
                            mttd_open_s=(seen - start).total_seconds(),
                            open_probe=probe["name"],
                            open_basis="opened_at" if opened is not None else "probe end",
                        )
                if row["mttd_alert_s"] is None and records_alert(output):
                    measured = _seconds(output.get("mttd_alert_s"))
                    if measured is not None:
                        row.update(
                            mttd_alert_s=measured, alert=probe["name"], alert_basis="measured"
                        )
                    elif pd.notna(probe["end"]):
                        row.update(
                            mttd_alert_s=(probe["end"] - start).total_seconds(),
                            alert=probe["name"],
                            alert_basis="probe end",
                        )
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(JOURNAL_DETECTION_COLUMNS))
    frame["fault_start"] = frame["fault_start"].astype(UTC_DTYPE)
    for column in ("breaker", "open_probe", "open_basis", "alert", "alert_basis"):
        values = frame[column].astype(object)
        frame[column] = values.where(values.notna(), None)
    return frame.astype({"mttd_open_s": "float64", "mttd_alert_s": "float64"})
