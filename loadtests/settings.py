"""Every knob of a load run, defined once for Locust's parser and for `python -m loadtests`.

Each `Option` is a Locust custom argument (so it shows in the web UI and reaches the workers)
that can also be set by its environment variable; a flag wins over the variable. Parsed values
stay plain `str`/`int`/`float`/`None` because Locust sends the options to its workers with
msgpack and shows them in the web UI.

The admin token is deliberately not an option (it would show in `ps` and the web UI): it is
read from `LOADTEST_ADMIN_TOKEN` only.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.arguments import bounded_int, http_url

ADMIN_TOKEN_ENV = "LOADTEST_ADMIN_TOKEN"  # noqa: S105 - a variable name
SHAPES = ("steady", "ramp", "outage")
OUTAGE_FAULTS = ("error", "hang")
DEFAULT_SHAPE_SECONDS = 60.0
"""Run time of a ramp or outage shape when Locust got no `--run-time`."""


# ----------------------------------------------------------------------------- value parsers


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what}: not a finite number: {text!r}")
    return value


def parse_range(text: str) -> tuple[float, float]:
    """`"A-B"` or `"A"` (= `"A-A"`) as `(A, B)`; raises ValueError unless 0 <= A <= B."""
    low_text, sep, high_text = text.strip().partition("-")
    low = float(low_text)
    high = float(high_text) if sep else low
    if not (math.isfinite(low) and math.isfinite(high)) or not 0 <= low <= high:
        raise ValueError(f"not a range A-B with 0 <= A <= B: {text!r}")
    return low, high


def wait_range(text: str) -> str:
    """A think time in seconds, `"MIN-MAX"` (uniform) or `"S"` (constant), at most 3600."""
    try:
        low, high = parse_range(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"think time must be S or MIN-MAX seconds (0 <= MIN <= MAX), got {text!r}"
        ) from None
    if high > 3600:
        raise argparse.ArgumentTypeError(f"think time above 3600 s: {text!r}")
    return f"{low:g}-{high:g}"


def id_range(text: str) -> str:
    """A range of BGG ids `"A-B"` with 1 <= A <= B."""
    low_text, sep, high_text = text.strip().partition("-")
    try:
        low, high = int(low_text), int(high_text if sep else low_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ids must be A-B whole numbers, got {text!r}") from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"ids must be A-B with 1 <= A <= B, got {text!r}")
    return f"{low}-{high}"


def parse_id_range(text: str) -> tuple[int, int]:
    """The bounds of an `id_range` value."""
    low, _, high = id_range(text).partition("-")
    return int(low), int(high)


def fraction_window(text: str) -> str:
    """Start and end of the outage as fractions of the run, `"A-B"` with 0 < A < B < 1."""
    try:
        low, high = parse_range(text)
    except ValueError:
        low, high = -1.0, -1.0
    if not 0 < low < high < 1:
        raise argparse.ArgumentTypeError(
            f"outage window must be A-B with 0 < A < B < 1 (fractions of the run), got {text!r}"
        )
    return f"{low:g}-{high:g}"


#: A user-class weight or count: a whole number 0..1000.
weight = bounded_int(0, 1000)


def steps(text: str) -> int:
    """Number of ramp steps, 2..50."""
    value = weight(text)
    if not 2 <= value <= 50:
        raise argparse.ArgumentTypeError(f"ramp steps must be 2-50, got {value}")
    return value


def seconds(text: str) -> float:
    """A positive number of seconds, at most an hour."""
    value = _number(text, "seconds")
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"seconds must be in (0, 3600], got {text!r}")
    return value


def http_url_or_empty(text: str) -> str:
    """An http(s) URL without a trailing slash, or `""` for none."""
    text = text.strip()
    if not text:
        return ""
    return http_url(text)


def search_terms(text: str) -> str:
    """Comma-separated title search terms (1-200 characters each), at least one."""
    terms = [term.strip() for term in text.split(",") if term.strip()]
    if not terms or any(len(term) > 200 for term in terms):
        raise argparse.ArgumentTypeError("search terms: one or more, comma-separated, <= 200 chars")
    return ",".join(terms)


def _slo(what: str, low: float, high: float, *, auto: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> float | str | None:
        lowered = text.strip().lower()
        if lowered == "off":
            return None
        if auto and lowered == "auto":
            return "auto"
        value = _number(text, what)
        if not low < value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in ({low:g}, {high:g}] or off")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


slo_rate = _slo("error rate", 0, 1)
slo_ms = _slo("milliseconds", 0, 3_600_000)
slo_ms_auto = _slo("milliseconds", 0, 3_600_000, auto=True)
slo_ratio = _slo("ratio", 0, 1_000_000)


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice {text!r} (choose from {', '.join(choices)})"
            )
        return text

    parse.__name__ = "choice"
    return parse


# ----------------------------------------------------------------------------- the options


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: a flag, its environment variable, a parser and a default (as text)."""

    flag: str
    env: str
    parse: Callable[[str], Any]
    default: str
    help: str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        """The attribute name on Locust's parsed options."""
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--shape", "LOADTEST_SHAPE", _choice(SHAPES), "steady",
           "load shape: steady (users for the run time), ramp (steps up to --users to find "
           "the knee), outage (BGG healthy, down, recovered)", "{steady,ramp,outage}"),
    Option("--ramp-steps", "LOADTEST_RAMP_STEPS", steps, "6", "ramp: number of equal steps"),
    Option("--outage-window", "LOADTEST_OUTAGE_WINDOW", fraction_window, "0.3-0.7",
           "outage: when BGG is down, as fractions of the run time", "A-B"),
    Option("--outage-fault", "LOADTEST_OUTAGE_FAULT", _choice(OUTAGE_FAULTS), "error",
           "outage: error (BGG answers 503 at once) or hang (BGG accepts and never answers)",
           "{error,hang}"),
    Option("--bgg-control-url", "LOADTEST_BGG_CONTROL_URL", http_url_or_empty, "",
           "outage: URL of the fake BGG whose /_control/ API switches BGG off and on", "URL"),
    Option("--public-weight", "LOADTEST_PUBLIC_WEIGHT", weight, "8",
           "weight of public visitors (list, search, detail)", "N"),
    Option("--admin-weight", "LOADTEST_ADMIN_WEIGHT", weight, "1",
           "weight of admins (monitoring endpoints, breaker status)", "N"),
    Option("--importer-weight", "LOADTEST_IMPORTER_WEIGHT", weight, "3",
           "weight of importers (BGG imports: the only BGG-dependent traffic)", "N"),
    Option("--probe-users", "LOADTEST_PROBE_USERS", weight, "1",
           "health-check probes (GET /health, /health/ready), a fixed count", "N"),
    Option("--public-wait", "LOADTEST_PUBLIC_WAIT", wait_range, "0.2-1",
           "public visitors' think time between requests, seconds", "MIN-MAX"),
    Option("--admin-wait", "LOADTEST_ADMIN_WAIT", wait_range, "1-3",
           "admins' think time, seconds", "MIN-MAX"),
    Option("--importer-wait", "LOADTEST_IMPORTER_WAIT", wait_range, "0.2-1",
           "importers' think time, seconds (importers do not wait for Retry-After)", "MIN-MAX"),
    Option("--probe-wait", "LOADTEST_PROBE_WAIT", wait_range, "0.2",
           "probes' interval, seconds", "MIN-MAX"),
    Option("--opening-rejections", "LOADTEST_OPENING_REJECTIONS",
           _choice(("separate", "together")), "separate",
           "separate: rejections of imports that had already called BGG (upstream_attempts "
           "> 0; without that field, sent before this load generator had seen the breaker "
           "open) go to 'import (breaker opening)'; together: all rejections count as "
           "'import (breaker open)'", "{separate,together}"),
    Option("--request-timeout", "LOADTEST_REQUEST_TIMEOUT", seconds, "20",
           "the run's patience: a request without an answer after this many seconds fails "
           "(keep it above the service's BGG_DEADLINE_SECONDS)", "S"),
    Option("--import-ids", "LOADTEST_IMPORT_IDS", id_range, "1-2000000",
           "importers pick BGG ids uniformly from this range", "A-B"),
    Option("--search-terms", "LOADTEST_SEARCH_TERMS", search_terms,
           "empire,railway,castle,garden,dragon,harbor,merchant,card game,zürich,brass",
           "public visitors' title searches, comma-separated", "TERMS"),
    Option("--slo-error-rate", "LOADTEST_SLO_ERROR_RATE", slo_rate, "0.01",
           "threshold: failed requests / all requests must stay below this (or off)", "F"),
    Option("--slo-breaker-p99-ms", "LOADTEST_SLO_BREAKER_P99_MS", slo_ms_auto, "auto",
           "threshold: p99 of 'import (breaker open)' below this many ms; auto = 50 with the "
           "outage shape, off otherwise", "MS"),
    Option("--slo-public-p95-ms", "LOADTEST_SLO_PUBLIC_P95_MS", slo_ms, "500",
           "threshold: each public read's p95 (list, search, detail; the slowest is judged) "
           "in ms", "MS"),
    Option("--slo-breaker-health-ratio", "LOADTEST_SLO_BREAKER_HEALTH_RATIO", slo_ratio, "off",
           "threshold: p99 of 'import (breaker open)' / p99 of GET /health (off by default; "
           "always reported)", "X"),
    Option("--summary-json", "LOADTEST_SUMMARY_JSON", str, "",
           "write the summary (figures and threshold verdicts) to this JSON file", "PATH"),
)  # fmt: skip

BY_DEST: Mapping[str, Option] = {option.dest: option for option in OPTIONS}
BREAKER_SLO_AUTO_MS = 50.0
"""What `--slo-breaker-p99-ms auto` means with the outage shape: the spec's target."""


def add_locust_arguments(parser: Any) -> None:
    """Register every option on Locust's parser (`events.init_command_line_parser`)."""
    group = parser.add_argument_group("bgg-reliability load test (loadtests/)")
    for option in OPTIONS:
        group.add_argument(
            option.flag,
            type=option.parse,
            default=option.default,
            env_var=option.env,
            help=option.help,
            metavar=option.metavar,
        )


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Register every option on the `python -m loadtests` parser (None when not given)."""
    group = parser.add_argument_group("load profile and thresholds (also as LOADTEST_* variables)")
    for option in OPTIONS:
        group.add_argument(
            option.flag,
            type=option.parse,
            default=None,
            help=f"{option.help} [{option.env}, default {option.default or 'none'}]",
            metavar=option.metavar,
        )


def resolve(
    given: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Effective values: a given (non-None) value, else the variable, else the default.

    Raises `argparse.ArgumentTypeError` naming the variable when one holds a bad value.
    """
    env = os.environ if environ is None else environ
    overrides = defaults or {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if given.get(option.dest) is not None:
            values[option.dest] = given[option.dest]
            continue
        text = env.get(option.env)
        source = option.env
        if text is None:
            text, source = overrides.get(option.dest, option.default), option.flag
        try:
            values[option.dest] = option.parse(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{source}: {exc}") from None
    return values


def to_argv(values: Mapping[str, Any]) -> list[str]:
    """The flags that give Locust exactly these values."""
    argv: list[str] = []
    for option in OPTIONS:
        value = values[option.dest]
        if value is None:
            text = "off"
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = str(value)
        argv.append(f"{option.flag}={text}")
    return argv


def needs_admin_token(values: Mapping[str, Any]) -> bool:
    """Admins and importers send the admin token; a run without them needs none."""
    return bool(values["admin_weight"] or values["importer_weight"])


def option_value(parsed: Any, dest: str) -> Any:
    """An option from Locust's parsed options, or its variable/default when not parsed yet."""
    if parsed is not None and hasattr(parsed, dest):
        return getattr(parsed, dest)
    option = BY_DEST[dest]
    return option.parse(os.environ.get(option.env, option.default))
