"""`report.html`: a run's results as one page a person can read, with no network needed.

Built from what the run wrote (`summary.json`'s document and `events.jsonl`), with the
template `chaos/templates/report.html.j2`: CSS inline, each scenario's timeline inlined as SVG
(`chaos.timeline`), no scripts, no fonts or images from elsewhere. The verdict comes first (the
exit code and what it means, how many scenarios passed, the seed and the command that replays
it, commit, versions); then per scenario its hypotheses as sentences with the measured value,
the target and pass/fail, the timeline, the lost / duplicated work check, a note under figures
that look alarming but are not a broken promise, and links to its logs and journal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chaos import timeline
from chaos.events import read_events
from chaos.report import BACKENDS

PAGE = "report.html"
ALARMING = "Looks alarming, but passed:"
TEMPLATES = Path(__file__).parent / "templates"

#: What each exit code means, as the page says it.
EXIT_MEANINGS = {
    0: "Every hypothesis held: the service kept its promises under every fault.",
    1: "A hypothesis deviated: the service broke a promise (or missed a target) under a fault.",
    2: "The harness failed (bad arguments, a part that would not start, an activity that "
    "crashed, or an interruption): the results below are incomplete.",
    3: "Data lost: work the service accepted was lost, done twice, or appeared from nowhere.",
}
VERDICT_WORDS = {"passed": "passed", "deviated": "deviated", "error": "harness error",
                 "data_lost": "data lost", "skipped": "skipped",
                 "interrupted": "interrupted"}  # fmt: skip
PHASES = {"before": "before the fault", "method": "under the fault",
          "during": "throughout the fault", "after": "after recovery",
          "rollback": "while undoing the fault"}  # fmt: skip

#: The measured figures, by key: (what a person calls it, unit: "s", "ms", "%" or "").
FIGURES = {
    "mttd_open_s": ("time to detect (fault began → breaker open)", "s"),
    "mttd_alert_s": ("time to alert (breaker open → alert sent)", "s"),
    "rejection_p50_ms": ("breaker rejection, median latency", "ms"),
    "rejection_p99_ms": ("breaker rejection p99 latency", "ms"),
    "import_success_rate": ("imports that succeeded", "%"),
    "deadline_max_s": ("slowest import", "s"),
    "self_recovery_s": ("breaker closed on its own after", "s"),
    "close_after_heal_s": ("breaker closed after BGG healed, within", "s"),
    "all_ended_after_close_s": ("every bulk job ended after the breaker closed, within", "s"),
    "thumbnail_failures": ("thumbnail downloads that failed", ""),
    "rejected_by_cdn_breaker": ("of those, rejected by the CDN breaker", ""),
    "task_success_rate": ("thumbnail downloads that succeeded", "%"),
    "public_error_rate": ("public API errors under the fault", "%"),
    "public_p99_ms": ("public API p99 latency under the fault", "ms"),
    "faults_fired": ("faults the fake BGG fired", ""),
    "fault_plan_followed": ("fault plan followed exactly", ""),
    "bgg_requests": ("requests the fake BGG received", ""),
    "service_start_s": ("service start-up time", "s"),
    "load_average_1m": ("machine load (1-minute average) at the start", ""),
    "fault_sequence_sha256": ("fault sequence fingerprint (sha256)", ""),
}

#: Why a scenario's fault takes the public catalogue down on purpose, for the scenarios that
#: promise it answers before and after the fault but not during it.
PUBLIC_DOWN_WHY = {
    "database_outage": "the catalogue is read from the database, which is taken away on "
    "purpose (on SQLite only writes are locked and reads go on; on PostgreSQL reads fail too)",
    "database_failover": "PostgreSQL's connections are killed and refused on purpose, and the "
    "catalogue is read from it",
    "service_restart": "the service is stopped and restarted on purpose",
    "worker_crash": "a worker process is killed on purpose",
}


@dataclass
class Check:
    """One hypothesis as the page shows it."""

    sentence: str
    when: str
    measured: str
    target: str
    met: bool


@dataclass
class Figure:
    """One measured figure."""

    label: str
    value: str


@dataclass
class Link:
    """A file of the run, linked relative to the page."""

    label: str
    href: str


@dataclass
class ScenarioView:
    """One scenario (on one backend) as the page shows it."""

    name: str
    anchor: str
    scenario: str
    backend: str
    verdict: str
    verdict_words: str
    reason: str
    fault: str
    title: str
    held: int
    total: int
    duration: str
    checks: list[Check] = field(default_factory=list)
    not_judged: list[Check] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    #: (heading, text): explanations beside the timeline.
    notes: list[tuple[str, str]] = field(default_factory=list)
    work: list[str] = field(default_factory=list)
    work_ok: bool | None = None
    work_note: str = ""
    timeline_svg: str = ""
    links: list[Link] = field(default_factory=list)
    replay: str = ""


def write(folder: Path, summary: dict[str, Any]) -> Path:
    """Write `report.html` into the run's `folder` (next to `events.jsonl`); its path."""
    events = read_events(folder / "events.jsonl")
    logs = sorted(p.name for p in (folder / "logs").glob("*.log")) if folder.is_dir() else []
    page = render(summary, events, logs=logs)
    path = folder / PAGE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def render(summary: dict[str, Any], events: list[dict[str, Any]], *, logs: list[str]) -> str:
    """The page for a run's `summary` (the `summary.json` document) and its events."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_scenario.setdefault(str(event.get("scenario")), []).append(event)
    views = [scenario_view(s, by_scenario.get(s["name"], []), logs) for s in summary["scenarios"]]
    code = int(summary["exit_code"])
    ran = [v for v in views if v.verdict != "skipped"]
    return environment.get_template("report.html.j2").render(
        run_id=summary.get("run_id", ""),
        code=code,
        verdict=summary.get("verdict", ""),
        verdict_words=VERDICT_WORDS.get(str(summary.get("verdict")), str(summary.get("verdict"))),
        meaning=EXIT_MEANINGS.get(code, ""),
        passed=sum(v.verdict == "passed" for v in views),
        ran=len(ran),
        skipped=len(views) - len(ran),
        scenarios=views,
        seed=summary.get("seed"),
        replay=replay_command(summary),
        started=_when(summary.get("started")),
        duration=_duration(summary.get("duration_s")),
        git=summary.get("git") or {},
        versions=_versions(summary.get("versions") or {}),
        options=_options(summary.get("options") or {}),
        interrupted=bool(summary.get("interrupted")),
        failures=failures(views),
    )


def failures(views: list[ScenarioView]) -> list[tuple[ScenarioView, str]]:
    """What went wrong, for the top of the page: each broken promise (with what was measured
    against what), or the scenario's reason when no promise names it (an error, lost data)."""
    found: list[tuple[ScenarioView, str]] = []
    for view in views:
        if view.verdict in ("passed", "skipped"):
            continue
        broken = [c for c in view.checks if not c.met]
        for check in broken:
            text = f"{check.sentence} ({check.when}): measured {check.measured}"
            found.append((view, f"{text}, target {check.target}"))
        if view.verdict != "deviated" or not broken:
            found.append((view, f"{view.verdict_words.capitalize()}: {view.reason}"))
    return found


def replay_command(summary: dict[str, Any], scenario: str | None = None) -> str:
    """The command that runs the run again (or only `scenario`, with its own seed)."""
    options = summary.get("options") or {}
    names = (
        [scenario] if scenario else list(dict.fromkeys(s["scenario"] for s in summary["scenarios"]))
    )
    words = ["python", "-m", "chaos", "run", *names]
    if scenario is None:
        words += ["--seed", str(summary.get("seed"))]
    if (options.get("workers") or 1) != 1:
        words += ["--workers", str(options["workers"])]
    for key, value in (options.get("service_env_overrides") or {}).items():
        words += ["--service-env", f"{key}={value}"]
    return shlex.join(words)


def scenario_view(
    data: dict[str, Any], events: list[dict[str, Any]], logs: list[str]
) -> ScenarioView:
    """One scenario of `summary.json` with its events, as the page shows it."""
    name = str(data["name"])
    backend = BACKENDS.get(str(data.get("backend")), str(data.get("backend") or ""))
    verdict = str(data.get("verdict"))
    view = ScenarioView(
        name=name,
        anchor="scenario-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
        scenario=str(data.get("scenario") or name),
        backend=backend,
        verdict=verdict,
        verdict_words=VERDICT_WORDS.get(verdict, verdict),
        reason=str(data.get("reason") or ""),
        fault=str(data.get("fault") or ""),
        title=str(data.get("title") or ""),
        held=int(data.get("held") or 0),
        total=int(data.get("total") or 0),
        duration=_duration(data.get("duration_s")),
    )
    view.checks = [_check(h) for h in data.get("hypotheses") or []]
    view.not_judged = [
        Check(
            _sentence(s.get("promise") or s["name"]),
            PHASES.get(s.get("phase", ""), ""),
            "not judged",
            s.get("reason", ""),
            met=False,
        )
        for s in data.get("skipped_hypotheses") or []
    ]
    figures = data.get("figures") or {}
    view.figures = [
        Figure(label, _value(figures[key], unit))
        for key, (label, unit) in FIGURES.items()
        if figures.get(key) is not None
    ] + [
        Figure(key.replace("_", " "), _value(value, ""))
        for key, value in figures.items()
        if key not in FIGURES and value is not None
    ]
    _work(view, data.get("tasks"))
    view.notes = _notes(data, view)
    if events and verdict != "skipped":
        line = timeline.timeline(events)
        if not line.empty:
            view.timeline_svg = timeline.svg(line, salt=name)
    pattern = re.compile(rf"^(service|worker)-{re.escape(name)}-\d+\.log$")
    view.links = [Link(log, "logs/" + quote(log)) for log in logs if pattern.match(log)]
    journal = f"journal-{name}.json"
    view.links.append(Link(journal, quote(journal)))
    seed = next((e.get("seed") for e in events if e.get("kind") == "scenario_start"), None)
    if seed is not None:
        view.replay = shlex.join(["python", "-m", "chaos", "run", view.scenario, "--seed",
                                  str(seed)])  # fmt: skip
    return view


def _check(hypothesis: dict[str, Any]) -> Check:
    expected = str(hypothesis.get("expected") or "")
    unit = "ms" if expected.endswith(" ms") else "s" if expected.endswith(" s") else ""
    return Check(
        sentence=_sentence(str(hypothesis.get("promise") or hypothesis.get("name") or "")),
        when=PHASES.get(str(hypothesis.get("phase")), str(hypothesis.get("phase") or "")),
        measured=_value(hypothesis.get("observed"), unit),
        target=target(expected),
        met=bool(hypothesis.get("met")),
    )


def _sentence(promise: str) -> str:
    return promise[:1].upper() + promise[1:] if promise else promise


def target(expected: str) -> str:
    """A tolerance (`p99_ms <= 50.0 ms`, `all_ok == True`) as a target a person reads
    (`at most 50 ms`, `yes`): the sentence beside it already says what is measured."""
    match = re.match(r"^(?:(\S+) )?(==|<=|>=) (.+)$", expected)
    if match is None:
        return "yes" if expected.endswith("is true") else expected
    sign, value = match.group(2), match.group(3)
    words = {"True": "yes", "False": "no", "None": "nothing"}
    value = words.get(value, value)
    value = re.sub(r"^(-?\d+)\.0\b", r"\1", value)
    if sign == "<=":
        return f"at most {value}"
    if sign == ">=":
        return f"at least {value}"
    return value


def _value(value: Any, unit: str) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and unit == "%":
        return f"{100 * value:.3g} %"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return f"{text} {unit}".strip()
    if isinstance(value, int):
        return f"{value} {unit}".strip()
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= 120 else text[:117] + "..."
    return str(value)


def _work(view: ScenarioView, tasks: dict[str, Any] | None) -> None:
    """The lost / duplicated work check, in words."""
    if tasks is None:
        view.work_note = "Not checked: the scenario did not run to its end."
        return
    if not tasks.get("checked"):
        view.work_note = f"Not checked: {tasks.get('reason') or 'no database access'}."
        return
    lost, dup, unexp = tasks.get("lost", 0), tasks.get("duplicated", 0), tasks.get("unexpected", 0)
    view.work = [
        f"{tasks.get('attempted', 0)} thumbnail downloads started: "
        f"{tasks.get('succeeded', 0)} succeeded, {tasks.get('recorded_failure', 0)} failed and "
        f"were recorded (retryable), {tasks.get('superseded', 0)} superseded; "
        f"{lost} lost, {dup} done twice, {unexp} unexpected."
    ]
    ok = not (lost or dup or unexp)
    jobs = tasks.get("jobs")
    if jobs:
        jl, jd, ju = jobs.get("lost", 0), jobs.get("duplicated", 0), jobs.get("unexpected", 0)
        view.work.append(
            f"{jobs.get('expected', 0)} background jobs expected: {jobs.get('done', 0)} done, "
            f"{jobs.get('failed_recorded', 0)} failed and recorded, {jobs.get('in_spool', 0)} "
            f"waiting in the spool; {jl} lost, {jd} done twice, {ju} unexpected."
        )
        if jobs.get("reason"):
            view.work.append(str(jobs["reason"]))
        ok = ok and not (jl or jd or ju)
    view.work_ok = ok
    failed = tasks.get("recorded_failure", 0) or (jobs or {}).get("failed_recorded", 0)
    if ok and failed:
        view.work_note = (
            "Failed downloads are not lost work: each failure is stored and can be retried. "
            "The check fails only on work lost, done twice or appearing from nowhere."
        )


def _notes(data: dict[str, Any], view: ScenarioView) -> list[tuple[str, str]]:
    """Explanations of figures that look alarming but broke no promise."""
    notes: list[tuple[str, str]] = []
    figures = data.get("figures") or {}
    load, cores = figures.get("load_average_1m"), os.cpu_count() or 1
    busy = isinstance(load, int | float) and load > 1.5 * cores
    if busy and view.verdict not in ("passed", "skipped"):
        notes.append((
            "The machine was busy:",
            f"its load was {load:g} on {cores} cores when this scenario started. Timing "
            "promises (latencies, \"within N s\") can miss for reasons outside the service; "
            "run it again on a quiet machine before blaming the service.",
        ))  # fmt: skip
    names = {h.get("name") for h in data.get("hypotheses") or []}
    rate = figures.get("public_error_rate")
    if isinstance(rate, int | float) and rate > 0 and "public-api-answers-during" not in names:
        why = PUBLIC_DOWN_WHY.get(view.scenario, "the fault takes the public catalogue down too")
        notes.append((ALARMING,
            f"The public API failed {100 * rate:.3g} % of its samples under the fault. That is "
            f"expected here, not a broken promise: {why}. This scenario promises that the "
            "catalogue answers before the fault and again after recovery (checked above)."
        ))  # fmt: skip
    p99, limit = figures.get("public_p99_ms"), 250.0
    judged_p99 = "public-api-fast-during" in names
    if isinstance(p99, int | float) and p99 > limit and not judged_p99 and view.verdict == "passed":
        notes.append((ALARMING,
            f"The public API's p99 latency under the fault was {p99:.0f} ms. This scenario "
            "makes no latency promise for it (only bgg_blackhole does, where hanging imports "
            "could starve the workers); a loaded machine and the fault itself slow it down."
        ))  # fmt: skip
    imports = figures.get("import_success_rate")
    if isinstance(imports, int | float) and imports < 1 and view.verdict == "passed":
        notes.append((ALARMING,
            f"Only {100 * imports:.3g} % of imports succeeded: imports need BGG, which fails on "
            "purpose here. The promise is how they fail (fast, with a clear status, without "
            "hammering BGG), checked above."
        ))  # fmt: skip
    return notes


def _when(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return value.replace("T", " ")[:19] + " UTC"


def _duration(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    if value < 90:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def _versions(versions: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("Python", str(versions.get("python"))), ("harness", str(versions.get("harness"))),
            ("service", str(versions.get("service")))]  # fmt: skip
    rows += [(k, str(v)) for k, v in (versions.get("packages") or {}).items() if v]
    return rows


def _options(options: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("database", str(options.get("database") or "")),
            ("PostgreSQL too", "yes" if options.get("postgresql_too") else "no"),
            ("workers per service", str(options.get("workers") or 1))]  # fmt: skip
    if options.get("target"):
        rows.append(("against a service at", str(options["target"])))
    overrides = options.get("service_env_overrides") or {}
    if overrides:
        rows.append(("service settings changed", ", ".join(f"{k}={v}" for k, v in
                                                           overrides.items())))  # fmt: skip
    return rows
