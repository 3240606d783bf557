"""The terminal, through rich: progress lines while the run goes, a summary table at the end."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chaos.engine import ScenarioResult
from chaos.report import BACKENDS

VERDICT_WORDS = {0: "all held", 1: "deviated", 2: "harness error", 3: "data lost"}
STYLE = {"passed": "green", "deviated": "red", "data_lost": "bold red", "error": "magenta",
         "skipped": "yellow", "interrupted": "yellow"}  # fmt: skip


class Terminal:
    """Prints progress (an `EventLog` listener) and the final table."""

    def __init__(self) -> None:
        console = Console(highlight=False, soft_wrap=True)
        if not console.is_terminal:  # CI logs: no 80-column wrapping of the table
            console = Console(highlight=False, soft_wrap=True, width=160)
        #: The rich console, for a table or a spinner of one's own.
        self.console = console

    def line(self, text: str, style: str | None = None) -> None:
        """One line of output."""
        self.console.print(text, style=style, markup=False)

    def on_event(self, event: dict[str, Any]) -> None:
        """Progress from the event stream."""
        kind = event["kind"]
        if kind == "upstreams":
            self.line(
                f"fake BGG {event['bgg_base_url']} (control {event['bgg_control_url']}), "
                f"fake CDN {event['cdn_url']} (control {event['cdn_control_url']}), "
                f"proxy control {event['proxy_control_url']}, alerts to {event['webhook_url']}",
                "dim",
            )
        elif kind == "target":
            if event.get("alerts_unchecked"):
                self.line(f"alerts not judged: {event['alerts_unchecked']}", "yellow")
        elif kind == "skipped":
            self.line(f"  - {event['activity']} [{event['phase']}]: skipped: {event['reason']}",
                      "yellow")  # fmt: skip
        elif kind == "scenario_start":
            self.line(f"▶ {event['scenario']} ({_seeds(event)})", "bold")
        elif kind == "scenario_skipped":
            self.line(f"▶ {event['scenario']}: skipped: {event['reason']}", "yellow")
        elif kind == "fault":
            digest = event.get("fault_sequence_sha256")
            plan = f" (fault sequence sha256 {digest})" if digest else ""
            self.line(f"    fault {event['fault']} {'on' if event['on'] else 'off'}{plan}", "cyan")
        elif kind == "probe":
            mark, style = ("✓", "green") if event["met"] else ("✗", "red")
            self.line(
                f"  {mark} {event['probe']} [{event['phase']}]: {_short(event['observed'])} "
                f"(expected {event['expected']})",
                style,
            )
        elif kind == "activity_error":
            self.line(f"  ! {event['activity']}: {event['error']}", "magenta")
        elif kind == "scenario_end":
            reason = f": {event['reason']}" if event.get("reason") else ""
            self.line(f"  = {event['verdict']}{reason}", STYLE.get(event["verdict"]))
        elif kind == "harness_error":
            self.line(f"  ! {event['error']}", "magenta")

    def table(self, results: list[ScenarioResult], code: int, wall: float) -> None:
        """The summary table: one row per scenario (and backend), in plain words."""
        rows = [
            (_label(r), r.verdict, f"{sum(j.met for j in r.judgements)}/{len(r.judgements)}",
             _figures(r), f"{r.duration_s:.1f}s", r.reason)
            for r in results
        ]  # fmt: skip
        title = f"chaos run: exit {code} ({VERDICT_WORDS.get(code, '')}), {wall:.0f} s"
        table = Table(title=title)
        for column in ("scenario", "verdict", "held", "measured", "took", "why"):
            table.add_column(column, overflow="fold")
        for name, verdict, held, figures, took, why in rows:
            # Text, not markup: "database_outage[postgresql]" is not a style tag.
            table.add_row(Text(name), Text(verdict, STYLE.get(verdict, "")), held,
                          Text(figures), took, Text(why))  # fmt: skip
        self.console.print(table)


def _seeds(event: dict[str, Any]) -> str:
    """Both seeds that replay a scenario, each as `--seed` takes it back."""
    seed, run_seed = event["seed"], event.get("run_seed")
    if run_seed is None or run_seed == seed:
        return f"seed {seed}"
    return f"seed {seed}, from run seed {run_seed}: --seed {seed} or --seed {run_seed} replays it"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _label(result: ScenarioResult) -> str:
    """The scenario and its database: a scenario run on two backends shows twice, told apart."""
    backend = BACKENDS.get(result.backend or "", result.backend)
    return f"{result.scenario.name} ({backend})" if backend else result.name


def _figures(result: ScenarioResult) -> str:
    """The measured figures that say most, in words (report.html has them all)."""
    f = result.figures
    parts = []
    for key, label, unit in (
        ("mttd_open_s", "detected in", " s"),
        ("mttd_alert_s", "alerted in", " s"),
        ("rejection_p99_ms", "rejections p99", " ms"),
        ("import_success_rate", "imports ok", " %"),
        ("deadline_max_s", "slowest import", " s"),
        ("public_error_rate", "public errors", " %"),
        ("public_p99_ms", "public p99", " ms"),
    ):
        value = f.get(key)
        if value is None:
            continue
        if unit == " %":
            value = 100 * value
        text = f"{label} {_fmt(value)}{unit}"
        promised = {j.name for j in result.judgements}
        if key == "public_error_rate" and value and "public-api-answers-during" not in promised:
            text += " (not promised here)"
        parts.append(text)
    tasks = result.tasks
    if tasks is not None and tasks.checked and tasks.attempted:
        jobs = tasks.jobs
        lost = len(tasks.lost) + (len(jobs.lost) if jobs else 0)
        doubled = len(tasks.duplicated) + (len(jobs.duplicated) if jobs else 0)
        unexpected = len(tasks.unexpected) + (len(jobs.unexpected) if jobs else 0)
        work = f"downloads {tasks.succeeded} ok, {tasks.recorded_failure} failed (recorded)"
        if lost or doubled or unexpected:
            work += f", LOST {lost}, done twice {doubled}, unexpected {unexpected}"
        else:
            work += ", none lost"
        parts.append(work)
    return ", ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def stderr(message: str) -> None:
    """A one-line error for the user."""
    print(message, file=sys.stderr, flush=True)
