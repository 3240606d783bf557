"""Locust event listeners: options, weights, preflight, and the threshold check at the end.

- `init_command_line_parser`: adds the options of `settings.py` to Locust's parser.
- `init` (every process): applies the weights, think times and probe count; on the master
  (or a local runner) runs the preflight - the target answers, the admin token is accepted,
  the outage shape has a fake BGG to switch - and ends with one line and exit code 2 if not.
- `test_start` (master): notes the start.
- `quitting` (master): snapshots the statistics, evaluates the thresholds, writes
  `--summary-json` and sets the exit code: 0 all held, 1 a breach, 2 a harness error (the
  outage could not be switched). `quit` prints the threshold table as the last output.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import names, summary
from loadtests.knee import find_knee
from loadtests.preflight import PreflightError, check_target
from loadtests.settings import (
    ADMIN_TOKEN_ENV,
    OPTIONS,
    add_locust_arguments,
    needs_admin_token,
    option_value,
)
from loadtests.shapes import LoadShape
from loadtests.thresholds import build_thresholds, evaluate_all, format_table
from loadtests.users import Admin, HealthProbe, Importer, PublicVisitor
from loadtests.windows import take

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    started_at: float | None = None
    started_clock: float = 0.0
    table: str = ""


_RUN = _Run()


def options_of(environment: Environment) -> dict[str, Any]:
    """Every option's effective value for this run."""
    parsed = environment.parsed_options
    return {option.dest: option_value(parsed, option.dest) for option in OPTIONS}


def _is_worker(environment: Environment) -> bool:
    return isinstance(environment.runner, WorkerRunner)


def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    add_locust_arguments(parser)


def apply_weights(environment: Environment, options: dict[str, Any]) -> None:
    """Class weights and the probe count from the options; classes at 0 are left out."""
    PublicVisitor.weight = options["public_weight"]
    Admin.weight = options["admin_weight"]
    Importer.weight = options["importer_weight"]
    HealthProbe.fixed_count = options["probe_users"]
    kept = [
        cls
        for cls in environment.user_classes
        if (cls.fixed_count if cls is HealthProbe else cls.weight) > 0
    ]
    if not kept:
        raise PreflightError("no users to run: every weight and --probe-users are 0")
    environment.user_classes[:] = kept


def _fail(message: str) -> None:
    sys.stderr.write(f"loadtests: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _on_init(environment: Environment, **_kwargs: Any) -> None:
    options = options_of(environment)
    try:
        apply_weights(environment, options)
    except PreflightError as exc:
        _fail(str(exc))
    if _is_worker(environment) or environment.parsed_options is None:
        return
    outage = options["shape"] == "outage"
    if outage and not options["bgg_control_url"]:
        _fail("the outage shape needs --bgg-control-url: the fake BGG it switches off and on")
    if not environment.host:
        logger.warning("no --host given: preflight checks skipped (they run when a host is set)")
        return
    try:
        check_target(
            environment.host,
            token=os.environ.get(ADMIN_TOKEN_ENV),
            needs_token=needs_admin_token(options),
            control_url=options["bgg_control_url"] if outage else "",
        )
    except PreflightError as exc:
        _fail(str(exc))


def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    if _is_worker(environment):
        return
    _RUN.started_at = time.time()
    _RUN.started_clock = time.perf_counter()


def evaluate_run(environment: Environment) -> dict[str, Any]:
    """Evaluate the thresholds on the statistics now; the summary, as written."""
    options = options_of(environment)
    shape = environment.shape_class if isinstance(environment.shape_class, LoadShape) else None
    if shape is not None:
        shape.restore()
        elapsed = shape.elapsed()
    else:
        elapsed = time.perf_counter() - _RUN.started_clock
    final = take(environment.stats, elapsed)
    verdicts = evaluate_all(build_thresholds(options), final)
    records = shape.records if shape is not None else []
    knee = None
    if options["shape"] == "ramp":
        steps = summary.ramp_steps(records, final)
        knee = find_knee(steps, latency_bound_ms=options["slo_public_p95_ms"])
    errors = list(shape.errors) if shape is not None else []
    result = summary.build(
        final,
        verdicts,
        shape=str(options["shape"]),
        options=options,
        started_at=_RUN.started_at or time.time(),
        finished_at=time.time(),
        phases=records,
        knee=knee,
        harness_errors=errors,
    )
    lines = [format_table(verdicts)]
    lines.extend(f"  HARNESS ERROR: {error}" for error in errors)
    if result["breaker_to_health_p99_ratio"] is not None:
        lines.append(
            f"p99 {names.IMPORT_BREAKER_OPEN} {result['breaker_rejection_p99_ms']} ms, "
            f"p99 GET {names.HEALTH} {result['health_p99_ms']} ms: "
            f"ratio {result['breaker_to_health_p99_ratio']}x"
        )
    _RUN.table = "\n".join(lines)
    if options["summary_json"]:
        summary.write(options["summary_json"], result)
    environment.process_exit_code = 2 if errors else (0 if result["passed"] else 1)
    return result


def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if _is_worker(environment) or _RUN.started_at is None:
        return
    evaluate_run(environment)


def _on_quit(exit_code: int, **_kwargs: Any) -> None:
    if _RUN.table:
        sys.stdout.write(f"\n{_RUN.table}\nexit code {exit_code}\n")
        sys.stdout.flush()


def _listen(hook: Any, listener: Any) -> None:
    hook.add_listener(listener)


_listen(events.init_command_line_parser, _add_arguments)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.quitting, _on_quitting)
_listen(events.quit, _on_quit)
