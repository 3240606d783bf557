"""`python -m notebooks`: run the three notebook reports headless into `reports/notebooks/`.

    python -m notebooks [--data generated|PATH ...] [--database-url URL] [--sentry PATH ...]
                        [--chaos-dir D] [--load-dir D] [--reports-dir D] [--tests PATH]
                        [--output DIR]
                        [--size small|large] [--since T] [--until T] [--bucket B]
                        [--only NAME ...] [--timeout S]

By default (`--data generated`) a data set is made first by driving the real service (see
`notebooks.generate`) into `OUTPUT/data/`; the harness's own reports, the latest chaos run
(`reports/chaos/latest/`) and `reports/load/`, fill what is not given when they are there
(`--reports-dir` names another folder than the repository's `reports/`). PATHs (files or
folders) are recognised by what they hold (see `notebooks.dataset`); the flags name one
source each and win over PATHs.

Exit codes: 0 every notebook ran; 1 a cell failed (one line names the notebook, the cell and
the error; the notebook is written up to that cell); 2 bad arguments or input (a missing
file, an empty export, an export of another shape, a database without the tables), said in
one line, before anything runs; 130 interrupted. Everything started is stopped on every path.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from chaos.arguments import Parser
from chaos.service import HarnessError
from notebooks import dataset
from notebooks.execute import NOTEBOOKS, REPO, CellError, run
from notebooks.reliability import sources
from notebooks.reliability.chaos import load_chaos_events, load_chaos_journal, load_chaos_summary
from notebooks.reliability.errors import InputError
from notebooks.reliability.tables import Window
from notebooks.reliability.timeutil import bucket_seconds


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = Parser(
        prog="python -m notebooks",
        error_hint=" (see --help)",
        description="Execute the notebook reports headless into reports/notebooks/.",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=["generated"],
        metavar="generated|PATH",
        help="'generated' (default): make a data set by driving the real service; or files "
        "and folders to read (a SQLite database, CSV exports of the tables, Sentry exports, "
        "chaos and load reports, a JUnit XML)",
    )
    parser.add_argument("--database-url", help="the service's DATABASE_URL to read")
    parser.add_argument("--sentry", nargs="+", metavar="PATH", help="Sentry exports")
    parser.add_argument(
        "--chaos-dir",
        type=Path,
        help="a `python -m chaos run` report: a run's folder, or a folder of runs (its latest)",
    )
    parser.add_argument("--load-dir", type=Path, help="a load run's report folder")
    parser.add_argument(
        "--reports-dir",
        type=Path,
        help="where the latest chaos run (chaos/latest) and the load run (load/) are looked "
        "for when not given otherwise (default: the repository's reports/)",
    )
    parser.add_argument("--tests", type=Path, help="a JUnit XML, tests.json or collect output")
    parser.add_argument(
        "--output", type=Path, default=REPO / "reports" / "notebooks", help="output folder"
    )
    parser.add_argument(
        "--size", choices=("small", "large"), default="small", help="size of a generated data set"
    )
    parser.add_argument("--since", default="", help="start of the time window (ISO-8601)")
    parser.add_argument("--until", default="", help="end of the time window (ISO-8601)")
    parser.add_argument("--bucket", default="auto", help="time bucket: auto, 30s, 15min, 1h, 1d")
    parser.add_argument(
        "--only", nargs="+", choices=NOTEBOOKS, metavar="NAME", help="run only these notebooks"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one cell may take (default 600)"
    )
    return parser


def _chaos_dir(data: dataset.DataSet, given: Path) -> None:
    if not given.is_dir():
        raise InputError(f"--chaos-dir {given}: no such folder (expected reports/chaos)")
    found = dataset.chaos_reports(given)
    for attribute, path in found.items():
        setattr(data, attribute, path)
    if not found:
        raise InputError(
            f"--chaos-dir {given} holds no summary.json, journal.json or events.jsonl: "
            "expected a run's folder of `python -m chaos run`, or its folder of runs with "
            "`latest`"
        )


def resolve(args: argparse.Namespace) -> dataset.DataSet:
    """The data set the arguments name (generating one when asked)."""
    generated = args.data == ["generated"]
    if "generated" in args.data and not generated:
        raise InputError("--data: 'generated' cannot be mixed with paths")
    if generated:
        from notebooks.generate import generate

        folder = args.output / "data"
        print(f"generating a {args.size} data set in {folder} (the real service, fake upstreams)")
        manifest = generate(
            folder,
            size=args.size,
            count_tests=args.tests is None,
            progress=lambda s: print(f"  {s}", flush=True),
        )
        print(f"  done in {manifest['seconds']} s: {manifest['imports']} imports")
        data = dataset.from_paths([str(folder)])
        data.generated = True
        # The generator's events describe the data set; the chaos run's come from reports/.
        data.events_path, data.chaos_events = str(folder / "events.jsonl"), ""
    else:
        data = dataset.from_paths(args.data)
        if data.chaos_events and not data.events_path:
            data.events_path = data.chaos_events
    if args.database_url:
        data.database_url = args.database_url
    if args.sentry:
        data.sentry_paths = list(args.sentry)
    if args.chaos_dir:
        _chaos_dir(data, args.chaos_dir)
    if args.load_dir:
        if not args.load_dir.is_dir():
            raise InputError(f"--load-dir {args.load_dir}: no such folder (expected reports/load)")
        if sources.load_results(str(args.load_dir)) is None:
            raise InputError(
                f"--load-dir {args.load_dir} holds no load run: expected Locust's *_stats.csv "
                "or the summary.json of `python -m loadtests`"
            )
        data.load_dir = str(args.load_dir)
    if args.tests:
        data.tests_path = str(args.tests)
    if args.reports_dir is not None and not args.reports_dir.is_dir():
        raise InputError(f"--reports-dir {args.reports_dir}: no such folder")
    dataset.reports_dir(data, args.reports_dir or REPO / "reports")
    return data


def preflight(data: dataset.DataSet, args: argparse.Namespace) -> None:
    """Read every source once, so bad input is a one-line error before any notebook runs."""
    Window.parse(args.since, args.until)
    bucket_seconds(args.bucket, start=None, end=None)
    tables = sources.task_tables(
        database_url=data.database_url,
        failures_csv=data.failures_csv,
        runs_csv=data.runs_csv,
        since=args.since,
        until=args.until,
    )
    if tables is not None:
        tables.close()
    sources.sentry_events(data.sentry_paths)
    for path, loader in (
        (data.chaos_summary, load_chaos_summary),
        (data.chaos_journal, load_chaos_journal),
        (data.chaos_events, load_chaos_events),
        (data.events_path, load_chaos_events),
    ):
        if path:
            loader(path)
    sources.load_results(data.load_dir)
    sources.test_count(data.tests_path)


def run_all(names: list[str], values: dict[str, object], output: Path, *, timeout: float) -> None:
    """Run the notebooks side by side (one kernel each); raise the first `CellError`."""
    print(f"running {', '.join(names)}")
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {name: pool.submit(run, name, values, output, timeout=timeout) for name in names}
        errors: list[CellError] = []
        for name, future in futures.items():
            try:
                written = future.result()
            except CellError as exc:
                errors.append(exc)
                continue
            print(f"  {name}: {written.html} ({written.seconds:.1f} s)")
    if errors:
        raise errors[0]


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run; the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupted)  # a CI cancel stops the service and kernels too
    try:
        data = resolve(args)
        print("data:")
        print("\n".join(data.describe()) or "  (nothing: every section will say 'not available')")
        preflight(data, args)
        values = {
            **data.parameters(),
            "since": args.since,
            "until": args.until,
            "bucket": args.bucket,
            "output_dir": str(args.output),
        }
        run_all(args.only or list(NOTEBOOKS), values, args.output, timeout=args.timeout)
    except (InputError, HarnessError) as exc:
        print(f"python -m notebooks: error: {exc}", file=sys.stderr)
        return 2
    except CellError as exc:
        print(f"python -m notebooks: {exc}", file=sys.stderr)
        return 2 if exc.input_error else 1
    except KeyboardInterrupt:
        print("python -m notebooks: interrupted", file=sys.stderr)
        return 130
    print(f"reports in {args.output} ({time.monotonic() - started:.0f} s)")
    return 0
