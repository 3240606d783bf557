"""`python -m chaos list`, `python -m chaos run [SCENARIO ...] [options]` and
`python -m chaos stack [options]` (`chaos.stack_cli`), `python -m chaos demo [options]`
(`chaos.demo`), `python -m chaos verdict JOURNAL` (`chaos.ctk_verdict`) and
`python -m chaos mutants [NAME ...]` (`chaos.mutants.cli`).

Exit codes of `run`: 0 every hypothesis held, 1 a hypothesis deviated, 2 the harness failed
(bad arguments, a port in use, an unreachable `--target`, a component that would not start,
an activity that crashed, an interruption), 3 data lost (the set checker found lost,
duplicated or unexpected tasks). Errors before the run are one line on stderr, and nothing
is left running: every process and server the harness started is stopped on every path out,
Ctrl-C and SIGTERM included. Arguments are all checked before anything is started or created.

Each run writes into a folder of its own under `--report-dir` (`chaos.report`); the last two
lines printed name it with the exit code, and its `report.html`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from chaos import interrupts, scenarios
from chaos.arguments import Parser, bounded_int, http_url, port
from chaos.ctk_verdict import verdict_command
from chaos.demo import add_parser as add_demo_parser
from chaos.demo import demo_command
from chaos.engine import ScenarioResult
from chaos.events import EventLog, utc_now
from chaos.meta import git_commit, versions
from chaos.mutants.cli import add_parser as add_mutants_parser
from chaos.mutants.cli import mutants_command
from chaos.promises import HARNESS, SPEC
from chaos.report import (
    LATEST,
    VERDICTS,
    exit_code,
    point_latest,
    report_dir_problem,
    run_folder,
    write,
)
from chaos.runner import MAX_SEED, SCENARIO_SEEDS, Runner, plan
from chaos.service import HarnessError, check_service_env, env_pair
from chaos.stack import Options, Stack
from chaos.stack_cli import add_parser as add_stack_parser
from chaos.stack_cli import flag_options, stack_command
from chaos.ui import Terminal, stderr

_seed = bounded_int(0, MAX_SEED, out_of_range="must be between {low} and {high}: {value}")
_workers = bounded_int(1, 8, out_of_range="must be {low}-{high}: {value}")
_port = port(
    1, invalid="not a port number: {text!r}", out_of_range="port out of range 1-65535: {value}"
)


def _report_dir(value: str) -> Path:
    path = Path(value)
    problem = report_dir_problem(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return path


def _database_url(value: str) -> str:
    if not value.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
        raise argparse.ArgumentTypeError(
            "must start with sqlite+aiosqlite:/// or postgresql+asyncpg://"
        )
    return value


def _service_source(value: str) -> Path:
    path = Path(value).resolve()
    if not (path / "system" / "__main__.py").is_file():
        raise argparse.ArgumentTypeError(f"{value}: no system/__main__.py there")
    return path


def build_parser() -> argparse.ArgumentParser:
    """The `python -m chaos` argument parser."""
    parser = Parser(prog="python -m chaos", description="Fault-injection scenarios.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the scenarios")
    run = commands.add_parser("run", help="run scenarios (all by default)")
    run.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="names (default: all)")
    run.add_argument(
        "--seed",
        type=_seed,
        default=1,
        help=f"a run seed (0-{SCENARIO_SEEDS - 1}, default 1: each scenario derives its own), "
        f"or a scenario's own seed as printed ({SCENARIO_SEEDS} and up: used as is)",
    )
    run.add_argument(
        "--report-dir",
        type=_report_dir,
        default="reports/chaos",
        help="where each run gets a folder of its own, and `latest` (default reports/chaos)",
    )
    run.add_argument(
        "--database-url",
        type=_database_url,
        default=None,
        help="the service's database (default: SQLite in a temp folder)",
    )
    run.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="uvicorn workers per service (more than 1 adds a private Redis)",
    )
    run.add_argument(
        "--service-env",
        type=env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the service (a candidate config)",
    )
    run.add_argument(
        "--target",
        type=http_url,
        default=None,
        help="run against a service someone else started (see docs/chaos.md)",
    )
    run.add_argument(
        "--admin-token",
        default=os.environ.get("CHAOS_ADMIN_TOKEN"),
        help="admin token of --target (default $CHAOS_ADMIN_TOKEN)",
    )
    run.add_argument(
        "--service-source",
        type=_service_source,
        default=None,
        metavar="DIR",
        help="run the service from DIR/system (a copy, e.g. a mutant's) instead of this tree",
    )
    run.add_argument(
        "--no-page",
        action="store_true",
        help="skip report.html (seconds of plotting; the JSON reports are written as always)",
    )
    run.add_argument("--bgg-port", type=_port, default=None, help="fixed port of the fake BGG")
    run.add_argument("--cdn-port", type=_port, default=None, help="fixed port of the fake CDN")
    run.add_argument(
        "--webhook-port",
        type=_port,
        default=None,
        help="fixed port of the alert receiver (with --target: judge the service's alerts)",
    )
    run.add_argument(
        "--service-port",
        type=_port,
        default=None,
        help="fixed port of the service the harness starts",
    )
    run.add_argument(
        "--spool-path",
        type=Path,
        default=None,
        help="with --target: the service's SPOOL_PATH, for the set checker",
    )
    verdict = commands.add_parser(
        "verdict",
        help="a Chaos Toolkit journal's outcome as an exit code (0 held, 1 deviated, 2 not "
        "judged: e.g. the steady state was not met before the method)",
    )
    verdict.add_argument("journal", type=Path, help="the journal `chaos run` wrote")
    types = {
        "database_url": _database_url,
        "env_pair": env_pair,
        "url": http_url,
        "port": _port,
        "report_dir": _report_dir,
        "seed": _seed,
        "workers": _workers,
    }
    add_stack_parser(commands, types)
    add_demo_parser(commands, types)
    add_mutants_parser(commands, types)
    return parser  # fmt: skip


def list_scenarios() -> int:
    """Print every scenario with its fault and title."""
    for scenario in scenarios.load_all():
        print(f"{scenario.name:<18} {scenario.title}")
        print(f"{'':<18} fault: {scenario.fault}")
    return 0


def _options(args: argparse.Namespace, report_dir: Path) -> Options:
    if args.target is not None:
        if not args.admin_token:
            raise HarnessError("--target needs --admin-token (or CHAOS_ADMIN_TOKEN)")
        if args.service_env:
            raise HarnessError("--service-env applies to services the harness starts, not --target")
        if args.service_source:
            raise HarnessError("--service-source applies to services the harness starts")
    check_service_env(HARNESS.service_env() | dict(args.service_env))
    postgres = os.environ.get("TEST_DATABASE_URL") or None
    if postgres is not None and not postgres.startswith("postgresql"):
        postgres = None
    return flag_options(
        args,
        report_dir=report_dir,
        database_url=args.database_url,
        postgres_url=postgres,
        spool_path=args.spool_path,
        service_source=args.service_source,
    )


def _check_target(url: str, token: str) -> None:
    """`--target` must answer `/health` and accept the admin token."""
    try:
        with httpx.Client(trust_env=False, timeout=3) as client:
            client.get(f"{url}/health").raise_for_status()
            status = client.get(
                f"{url}/api/admin/monitoring/circuit-breakers",
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        raise HarnessError(f"cannot reach --target {url}: {type(exc).__name__}: {exc}") from None
    if status.status_code in (401, 403):
        raise HarnessError(f"--target {url} refused the admin token ({status.status_code})")
    if status.status_code != 200:
        raise HarnessError(f"--target {url}: breaker status answered {status.status_code}")


async def _run(stack: Stack, runner: Runner, names: list[str]) -> list[ScenarioResult]:
    items = plan([scenarios.load(n) for n in names], stack)
    task = asyncio.create_task(runner.run(items))

    def interrupt() -> None:
        stderr("interrupted: rolling back and stopping everything")
        task.cancel()

    try:
        with interrupts.calling(interrupt):
            return await task
    except asyncio.CancelledError:
        runner.interrupted = True
        return runner.results
    finally:
        await stack.aclose()


def run(args: argparse.Namespace) -> int:
    """The `run` command."""
    names = args.scenarios or list(scenarios.NAMES)
    unknown = [n for n in names if n not in scenarios.NAMES]
    if unknown:
        stderr(f"error: unknown scenario {unknown[0]!r} (python -m chaos list shows them)")
        return 2
    try:
        options = _options(args, run_folder(args.report_dir, args.seed, datetime.now(UTC)))
    except HarnessError as exc:
        stderr(f"error: {exc}")
        return 2
    with interrupts.raising():
        terminal = Terminal()
        stack = Stack(options)
        events: EventLog | None = None
        results: list[ScenarioResult] = []
        interrupted = False
        started, wall = utc_now(), time.monotonic()
        code = 2
        try:
            if options.target is not None:
                _check_target(options.target, options.admin_token or "")
            _create(options.report_dir)
            stack.start()
            events = EventLog(options.report_dir / "events.jsonl")
            events.subscribe(terminal.on_event)
            events.emit("upstreams", **stack.addresses())
            if options.target is not None:
                events.emit("target", url=options.target, env=stack.target_env(),
                            alerts_unchecked=options.alerting_unchecked)  # fmt: skip
            runner = Runner(stack, events, options.seed)
            results = asyncio.run(_run(stack, runner, names))
            code = exit_code(results)
            interrupted = runner.interrupted or any(r.interrupted for r in results)
            if interrupted and code != 3:
                code = 2
        except HarnessError as exc:
            stderr(f"error: {exc}")
            code = 2
        except (interrupts.Interrupted, KeyboardInterrupt):
            stderr("interrupted")
            interrupted, code = True, 2
        finally:
            stack.close()
    if events is None:
        _discard_if_empty(options.report_dir)
        return code
    meta = _meta(options, started, time.monotonic() - wall) | {"interrupted": interrupted}
    events.close()  # the page is drawn from the whole file
    page = write(options.report_dir, results, meta, code, with_page=not args.no_page)
    try:
        point_latest(options.report_dir)
    except OSError as exc:  # `latest` turned into something else during the run
        stderr(f"warning: {LATEST} not updated: {exc}")
    terminal.table(results, code, time.monotonic() - wall)
    terminal.line(
        f"exit {code} ({VERDICTS[code]}): reports in {options.report_dir}/ (journal.json, "
        f"events.jsonl, summary.json, logs/; {options.report_dir.parent / LATEST} points here)"
    )
    # Last, so a person finds the page where the output ends.
    if not args.no_page:
        terminal.line(f"report: {page}" if page is not None else "report: none (see the warning)")
    return code


def _create(folder: Path) -> None:
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise HarnessError(f"--report-dir: cannot create {folder}: {exc.strerror}") from None


def _discard_if_empty(folder: Path) -> None:
    """A run that stopped before its report leaves no folder, unless it holds service logs."""
    with contextlib.suppress(OSError):  # absent, or logs worth keeping
        folder.rmdir()


def _meta(options: Options, started: str, duration: float) -> dict[str, Any]:
    overrides = options.service_env
    return {
        "seed": options.seed,
        "started": started,
        "finished": utc_now(),
        "duration_s": round(duration, 3),
        "versions": versions(),
        "git": git_commit(),
        "options": {
            "workers": options.workers,
            "database": (options.database_url or "sqlite (temporary)").split("@")[-1],
            "postgresql_too": options.postgres_url is not None,
            "target": options.target,
            "service_env_overrides": overrides,
            "service_source": str(options.service_source) if options.service_source else None,
        },
        "harness_settings": HARNESS.service_env(),
        "spec_promises": {
            "breaker_fail_max": SPEC.breaker_fail_max,
            "retry_attempts": SPEC.retry_attempts,
            "thumbnail_attempts": SPEC.thumbnail_attempts,
            "rejection_p99_ms": SPEC.rejection_p99_ms,
            "flaky_import_success": SPEC.flaky_import_success,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m chaos`."""
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return list_scenarios()
    if args.command == "stack":
        return stack_command(args)
    if args.command == "demo":
        return demo_command(args)
    if args.command == "verdict":
        return verdict_command(args.journal)
    if args.command == "mutants":
        return mutants_command(args, list(argv) if argv is not None else sys.argv[1:])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
