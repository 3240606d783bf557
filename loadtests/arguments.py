"""The command line of `python -m loadtests`: its parser and the checks of each value.

Every check raises `argparse.ArgumentTypeError` with a message fit for one line; the parser
prints it as `python -m loadtests: error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from chaos.arguments import Parser, bounded_float, bounded_int
from chaos.service import env_pair
from loadtests import settings
from loadtests.stack import REPO

PROG = "python -m loadtests"
DEFAULT_REPORT_DIR = REPO / "reports" / "load"


def duration(text: str) -> int:
    """Seconds: `90`, `90s`, `2m` or `1m30s`; 5 to 3600."""
    match = re.fullmatch(r"\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*", text)
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"not a duration (90, 90s, 2m, 1m30s): {text!r}")
    total = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    if not 5 <= total <= 3600:
        raise argparse.ArgumentTypeError(f"duration must be 5 s to 1 h, got {total} s")
    return total


#: Users started per second, (0, 1000].
spawn_rate = bounded_float(0, 1000, out_of_range="spawn rate must be in (0, 1000], got {text}")


def loopback_url(text: str) -> str:
    """An http(s) URL on a loopback address: this command only loads this machine."""
    parts = urlsplit(text)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise argparse.ArgumentTypeError(
            f"must be an http(s) URL on loopback, got {text!r} "
            "(for another machine use: locust -f loadtests/locustfile.py --host URL)"
        )
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = Parser(
        prog=PROG,
        description="A bounded headless Locust run with pass/fail thresholds, against a "
        "service (and fake BGG) started on loopback.",
    )
    run = parser.add_argument_group("the run")
    run.add_argument(
        "--users",
        type=bounded_int(1, 10_000),
        default=30,
        help="peak number of simulated users (default 30)",
    )
    run.add_argument(
        "--spawn-rate", type=spawn_rate, default=10.0, help="users started per second (default 10)"
    )
    run.add_argument(
        "--duration", type=duration, default=60, help="run time: 60, 90s, 2m (default 60 s)"
    )
    run.add_argument(
        "--workers",
        type=bounded_int(1, 64),
        default=2,
        help="service worker processes (default 2)",
    )
    run.add_argument(
        "--service-env",
        type=env_pair,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="service settings on top of the run's own",
    )
    run.add_argument(
        "--report-dir",
        type=Path,
        default=DEFAULT_REPORT_DIR,
        help="where CSVs, report.html and summary.json go (default reports/load)",
    )
    run.add_argument(
        "--host",
        type=loopback_url,
        default=None,
        help="load an already running service at this loopback URL instead of "
        "starting one (admin token from LOADTEST_ADMIN_TOKEN)",
    )
    run.add_argument(
        "--seed-games",
        type=bounded_int(0, 10_000),
        default=None,
        help="games imported before the run (default 40; 0 with --host)",
    )
    run.add_argument(
        "--locust-processes",
        type=bounded_int(1, 64),
        default=None,
        help="run Locust distributed: a master and this many worker processes",
    )
    run.add_argument(
        "--no-redis",
        action="store_true",
        help="do not give the service REDIS_URL even when Redis answers",
    )
    run.add_argument(
        "--live-stats",
        action="store_true",
        help="let Locust print its statistics every few seconds",
    )
    settings.add_cli_arguments(parser)
    return parser


def build_report_parser() -> argparse.ArgumentParser:
    """The parser of `python -m loadtests report [DIR]`."""
    parser = Parser(
        prog=f"{PROG} report",
        description="Write report.html again from the files an earlier run left in DIR.",
    )
    parser.add_argument(
        "report_dir",
        type=Path,
        nargs="?",
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help="the run's report folder, with its summary.json (default reports/load)",
    )
    return parser
