"""Command line: `python -m system serve`, `worker [--concurrency N]` and `migrate [--to REVISION]`.

Bad arguments and bad settings end with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence

from pydantic import ValidationError

from system.config import Settings
from system.db import migrate
from system.db.database import Database
from system.supervision import mark_supervisor


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {port}")
    return port


def _one_to_64(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"must be 1-64, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The `python -m system` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m system", description="The bgg-reliability catalogue API."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the API under uvicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=_one_to_64, default=1, help="worker processes (default 1)")
    worker = commands.add_parser(
        "worker", help="run background job workers only (no API); SIGTERM drains them"
    )
    worker.add_argument(
        "--concurrency",
        type=_one_to_64,
        default=None,
        metavar="N",
        help="jobs run at once, 1-64 (default BACKGROUND_CONCURRENCY)",
    )
    migrate_parser = commands.add_parser(
        "migrate",
        help="upgrade the database to the newest schema, or move it to --to REVISION",
    )
    migrate_parser.add_argument(
        "--to",
        default="head",
        metavar="REVISION",
        help="target revision: head (default), base, or a revision id; older than the "
        "database's means a downgrade (the rollback plan)",
    )
    return parser


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


async def _migrate(settings: Settings, revision: str) -> tuple[str | None, str]:
    database = Database(
        settings.database_url.get_secret_value(), connect_timeout=settings.database_connect_timeout
    )
    try:
        async with asyncio.timeout(settings.database_connect_timeout * 4):
            return await migrate.migrate_to(database.engine, revision)
    finally:
        await database.close()


def migrate_command(settings: Settings, revision: str = "head") -> int:
    """Move the schema to `revision` (head by default).

    Exit 1 with one line when the database cannot be reached, 2 for an unknown revision.
    """
    try:
        migrate.check_revision(revision)
    except migrate.UnknownRevision as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        before, direction = asyncio.run(_migrate(settings, revision))
    except Exception as exc:
        text = str(exc).strip().splitlines()
        print(
            f"error: migration failed: {type(exc).__name__}: {text[0] if text else ''}".rstrip(),
            file=sys.stderr,
        )
        return 1
    target = migrate.head_revision() if revision == "head" else revision
    if direction == "none":
        print(f"database already at {target}")
    else:
        print(f"database at {target} ({direction}d from {before or 'an empty database'})")
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM ends `serve` with exit code 0, as it ends `worker`.

    uvicorn handles SIGTERM itself (a graceful shutdown: the job pool drains) and then raises
    it again with the handler it found installed; with the default one the process would die
    of the signal (143) after a clean drain, which a deploy cannot tell from a process that
    ignored the drain. Before uvicorn installs its handler (start-up), SIGTERM still stops.
    """
    raise SystemExit(0)


def serve_command(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run uvicorn with the app factory; workers each build their own app."""
    import uvicorn

    # Migrate once here so several workers do not all race to create the same tables.
    if workers > 1 and settings.auto_migrate and migrate_command(settings) != 0:
        print("warning: starting anyway; workers keep retrying the migration", file=sys.stderr)
    if workers > 1:
        mark_supervisor()  # the workers exit when this process dies, even by SIGKILL
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metric samples here and /metrics sums them; the folder must
        # be fresh (old samples would be summed too), so it is made now and removed at exit.
        directory = tempfile.mkdtemp(prefix="bgg-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    uvicorn.run(
        "system.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m system`."""
    args = build_parser().parse_args(argv)
    settings = _load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "migrate":
        return migrate_command(settings, args.to)
    if args.command == "worker":
        if args.concurrency is not None:
            settings = settings.model_copy(update={"background_concurrency": args.concurrency})
        from system.worker import run_worker

        return asyncio.run(run_worker(settings))
    return serve_command(settings, args.host, args.port, args.workers)


if __name__ == "__main__":
    sys.exit(main())
