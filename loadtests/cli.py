"""`python -m loadtests`: a bounded headless Locust run against a service it starts.

    python -m loadtests [--users 30] [--spawn-rate 10] [--duration 60] [--shape outage]
                        [--workers 2] [--service-env KEY=VALUE ...] [--report-dir reports/load]
                        [--host URL] [--seed-games 40] [--locust-processes N] [--live-stats]
                        [load-profile and threshold options, see --help]

Starts the fake image CDN and BGG and `python -m system serve` on loopback (with Redis when it
answers at 127.0.0.1:6379, under a namespace of the run's own), checks the target and the admin
token, seeds the catalogue, runs `locust -f loadtests/locustfile.py --headless` as a
subprocess, and writes to the report directory: `locust_stats.csv`,
`locust_stats_history.csv`, `locust_failures.csv`, `locust_exceptions.csv`,
`locust_report.html` (Locust's report), `summary.json`, `service.log`, and `report.html`: the
page for people, verdict first (`loadtests.page`). Then it stops everything it started, also
on Ctrl-C.

    python -m loadtests report [DIR]

writes `report.html` again from the files of an earlier run in DIR (default reports/load).

Exit codes: 0 every threshold held; 1 a threshold was breached (named in the table and in
summary.json); 2 bad options, a target that cannot be reached, an admin token that is
missing or refused, or another harness error - before any load when it can be known then;
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from chaos.service import stop_group
from loadtests import settings
from loadtests.arguments import PROG, build_parser, build_report_parser
from loadtests.page import LOCUST_PAGE, PAGE, PageError, write_page
from loadtests.preflight import PreflightError, check_target
from loadtests.runinfo import context as run_context
from loadtests.runinfo import redacted
from loadtests.stack import REPO, StackError, running_stack, seed_catalogue
from loadtests.summary import verdict_code
from loadtests.summary import write as write_summary

LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
CSV_PREFIX = "locust"
OUTPUTS = (
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    LOCUST_PAGE,
    PAGE,
    "summary.json",
    "service.log",
)
DEFAULT_SEED_GAMES = 40
CLI_DEFAULTS = {"shape": "outage"}
"""Where the command's defaults differ from plain Locust's: the run that proves the targets."""


def _error(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return 2


class _Interrupted(Exception):
    """SIGTERM or SIGINT arrived."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not cut the clean-up short.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise _Interrupted(signal.Signals(signum).name)


def locust_command(
    *,
    host: str,
    users: int,
    rate: float,
    seconds: int,
    report_dir: Path,
    values: Mapping[str, Any],
    processes: int | None,
    live_stats: bool,
) -> list[str]:
    """The `python -m locust ...` command line of the run."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        f"{rate:g}",
        "--run-time",
        f"{seconds}s",
        "--csv",
        str(report_dir / CSV_PREFIX),
        "--csv-full-history",
        "--html",
        str(report_dir / LOCUST_PAGE),
        *settings.to_argv(values),
    ]
    if not live_stats:
        command.append("--only-summary")
    if processes:
        command += ["--processes", str(processes)]
    return command


def run_locust(command: Sequence[str], env: Mapping[str, str], timeout: float) -> int:
    """Run Locust to the end; its exit code.

    Interrupted, or still running after `timeout`, it gets SIGINT: during a shape run Locust
    only handles SIGINT (its SIGTERM handler is installed after the shape ends), and then
    still writes its reports and the summary.
    """
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and locustfile
        list(command), env=dict(env), cwd=REPO, start_new_session=True
    )
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"{PROG}: Locust did not finish within {timeout:g} s; stopping it\n")
        stop_group(process, 15.0, first=signal.SIGINT, group_first=False)
        return 2
    finally:
        stop_group(process, 15.0, first=signal.SIGINT, group_first=False)


def _verdict_code(locust_code: int, summary: Mapping[str, Any] | None) -> int:
    if summary is None:
        if locust_code != 2:  # with 2 Locust has said why (preflight, bad option)
            _error(f"Locust exited with {locust_code} and wrote no summary")
        return 2
    code = verdict_code(summary)
    return code if code or locust_code == 0 else 2


@dataclass(frozen=True, slots=True)
class _Target:
    """The service under load and what the report says about it."""

    host: str
    token: str | None
    seed: int
    context: dict[str, Any]


def _start_target(
    stack: ExitStack, args: argparse.Namespace, values: dict[str, Any], report_dir: Path
) -> _Target:
    """The service at `--host`, or one started (with its fakes) on `stack`; then the
    outage shape switches that service's fake BGG (`values["bgg_control_url"]` is set)."""
    token = os.environ.get(settings.ADMIN_TOKEN_ENV) or None
    if args.host:
        seed = args.seed_games or 0
        context: dict[str, Any] = {"host": args.host, "service": "external", "seed_games": seed}
        return _Target(args.host, token, seed, context)
    service = stack.enter_context(
        running_stack(
            workers=args.workers,
            service_env=dict(args.service_env),
            log_path=report_dir / "service.log",
            token=token,
            use_redis=not args.no_redis,
        )
    )
    values["bgg_control_url"] = service.bgg_url or ""
    context = {
        "host": service.url,
        "service": {
            "workers": service.workers,
            "redis": service.redis_url is not None,
            "database": service.database_url.split(":", 1)[0],
            "settings": redacted(service.service_env),
        },
    }
    seed = DEFAULT_SEED_GAMES if args.seed_games is None else args.seed_games
    context["seed_games"] = seed
    return _Target(service.url, service.token, seed, context)


def _check_options(args: argparse.Namespace) -> dict[str, Any]:
    """The effective profile and threshold values; `_OptionError` when they do not fit."""
    try:
        values = settings.resolve(vars(args), defaults=CLI_DEFAULTS)
    except argparse.ArgumentTypeError as exc:
        raise _OptionError(str(exc)) from None
    if args.host and args.service_env:
        raise _OptionError("--service-env needs a service started by this command (no --host)")
    if not args.host and args.bgg_control_url:
        raise _OptionError(
            "--bgg-control-url is for --host: a started service gets its own fake BGG"
        )
    if args.host and values["shape"] == "outage" and not values["bgg_control_url"]:
        raise _OptionError("the outage shape against --host needs --bgg-control-url (its fake BGG)")
    return values


class _OptionError(Exception):
    """Options that parse but do not fit together."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return report(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        values = _check_options(args)
        report_dir = args.report_dir.resolve()
        report_dir.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:
            (report_dir / name).unlink(missing_ok=True)
    except (_OptionError, OSError) as exc:
        return _error(str(exc))
    if importlib.util.find_spec("locust") is None:
        return _error("Locust is not installed: pip install -e '.[load]' (or use nox -s load)")
    summary_path = report_dir / "summary.json"
    values["summary_json"] = str(summary_path)
    outage = values["shape"] == "outage"
    load_at_start = os.getloadavg()
    context: dict[str, Any] = {}
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with ExitStack() as stack:
            target = _start_target(stack, args, values, report_dir)
            context = target.context
            check_target(
                target.host,
                token=target.token,
                needs_token=settings.needs_admin_token(values) or target.seed > 0,
                control_url=values["bgg_control_url"] if outage else "",
            )
            if target.seed:
                seed_catalogue(target.host, target.token or "", target.seed)
            command = locust_command(
                host=target.host,
                users=args.users,
                rate=args.spawn_rate,
                seconds=args.duration,
                report_dir=report_dir,
                values=values,
                processes=args.locust_processes,
                live_stats=args.live_stats,
            )
            env = {**os.environ, settings.ADMIN_TOKEN_ENV: target.token or ""}
            code = run_locust(command, env, timeout=args.duration + 120)
    except (StackError, PreflightError, OSError) as exc:
        return _error(str(exc))
    except _Interrupted as exc:
        run = run_context(args, argv, context, load_at_start)
        if _annotate(summary_path, run, exit_code=130):
            try_write_page(report_dir)
        sys.stderr.write(f"{PROG}: interrupted ({exc}); everything it started is stopped\n")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = _read_summary(summary_path)
    result = _verdict_code(code, summary)
    summary = _annotate(summary_path, run_context(args, argv, context, load_at_start), result)
    page = try_write_page(report_dir) if summary is not None else None
    shown = f"the page: {page}; the rest" if page else "reports"
    sys.stdout.write(f"{PROG}: exit {result}; {shown} in {report_dir}\n")
    return result


def try_write_page(report_dir: Path) -> Path | None:
    """Write the run's page; a failure is reported and never changes the run's exit code."""
    try:
        return write_page(report_dir)
    except Exception as exc:  # the verdict stands, whatever the page does
        sys.stderr.write(f"{PROG}: {PAGE} not written: {type(exc).__name__}: {exc}\n")
        return None


def report(argv: Sequence[str]) -> int:
    """`python -m loadtests report [DIR]`: the page of the run in DIR, written again."""
    args = build_report_parser().parse_args(list(argv))
    try:
        page = write_page(args.report_dir)
    except PageError as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot write {args.report_dir / PAGE}: {exc}")
    sys.stdout.write(f"{page}\n")
    return 0


def _annotate(path: Path, run: dict[str, Any], exit_code: int) -> dict[str, Any] | None:
    """Add the run's context and the command's exit code to the summary Locust wrote (None
    when it wrote none)."""
    summary = _read_summary(path)
    if summary is not None:
        summary["run"] = run
        summary["exit_code"] = exit_code
        write_summary(path, summary)
    return summary


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
