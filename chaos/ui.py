"""The terminal: progress lines while the run goes, a summary table at the end.

Uses rich (the `chaos` extra) when it is installed, plain text otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from chaos.engine import ScenarioResult

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover - the chaos extra installs rich
    Console = None  # type: ignore[assignment,misc]
    Table = None  # type: ignore[assignment,misc]

STYLE = {"passed": "green", "deviated": "red", "data_lost": "bold red", "error": "magenta",
         "skipped": "yellow", "interrupted": "yellow"}  # fmt: skip


class Terminal:
    """Prints progress (an `EventLog` listener) and the final table."""

    def __init__(self) -> None:
        self._rich = None
        if Console is not None:
            console = Console(highlight=False, soft_wrap=True)
            if not console.is_terminal:  # CI logs: no 80-column wrapping of the table
                console = Console(highlight=False, soft_wrap=True, width=160)
            self._rich = console

    def line(self, text: str, style: str | None = None) -> None:
        """One line of output."""
        if self._rich is not None:
            self._rich.print(text, style=style, markup=False)
        else:
            print(text, flush=True)

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
        """The summary table."""
        rows = [
            (r.name, r.verdict, f"{sum(j.met for j in r.judgements)}/{len(r.judgements)}",
             _figures(r), f"{r.duration_s:.1f}s", r.reason)
            for r in results
        ]  # fmt: skip
        if self._rich is not None and Table is not None:
            table = Table(title=f"chaos run: exit {code}, {wall:.0f} s")
            for column in ("scenario", "verdict", "held", "figures", "time", "why"):
                table.add_column(column, overflow="fold")
            for name, verdict, held, figures, took, why in rows:
                table.add_row(name, f"[{STYLE.get(verdict, '')}]{verdict}[/]", held, figures,
                              took, why)  # fmt: skip
            self._rich.print(table)
            return
        print(f"chaos run: exit {code}, {wall:.0f} s")
        for row in rows:
            print("  ".join(str(cell) for cell in row))


def _seeds(event: dict[str, Any]) -> str:
    """Both seeds that replay a scenario, each as `--seed` takes it back."""
    seed, run_seed = event["seed"], event.get("run_seed")
    if run_seed is None or run_seed == seed:
        return f"seed {seed}"
    return f"seed {seed}, from run seed {run_seed}: --seed {seed} or --seed {run_seed} replays it"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _figures(result: ScenarioResult) -> str:
    f = result.figures
    parts = []
    for key, label, unit in (
        ("mttd_open_s", "MTTD", "s"),
        ("mttd_alert_s", "alert", "s"),
        ("rejection_p99_ms", "rej p99", "ms"),
        ("import_success_rate", "imports ok", ""),
        ("deadline_max_s", "slowest import", "s"),
        ("public_error_rate", "public err", ""),
        ("public_p99_ms", "public p99", "ms"),
    ):
        value = f.get(key)
        if value is not None:
            parts.append(f"{label} {_fmt(value)}{unit}")
    if result.tasks is not None and result.tasks.checked and result.tasks.attempted:
        t = result.tasks
        superseded = f"{t.superseded}superseded/" if t.superseded else ""
        parts.append(
            f"tasks {t.succeeded}ok/{t.recorded_failure}failed/{superseded}{len(t.lost)}lost/"
            f"{len(t.duplicated)}dup/{len(t.unexpected)}unexp"
        )
    if result.tasks is not None and result.tasks.jobs is not None and result.tasks.jobs.expected:
        j = result.tasks.jobs
        parts.append(
            f"jobs {j.done}done/{j.failed_recorded}failed/{len(j.lost)}lost/"
            f"{len(j.duplicated)}dup/{len(j.unexpected)}unexp"
        )
    return ", ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def stderr(message: str) -> None:
    """A one-line error for the user."""
    print(message, file=sys.stderr, flush=True)
