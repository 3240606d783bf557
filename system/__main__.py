"""Command line: `python -m system serve` and `python -m system migrate`.

Bad arguments and bad settings end with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from pydantic import ValidationError

from system.config import Settings
from system.db.database import Database


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {port}")
    return port


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= workers <= 64:
        raise argparse.ArgumentTypeError(f"workers must be 1-64, got {workers}")
    return workers


def build_parser() -> argparse.ArgumentParser:
    """The `python -m system` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m system", description="The bgg-reliability catalogue API."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the API under uvicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=_workers, default=1, help="worker processes (default 1)")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
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


async def _migrate(settings: Settings) -> None:
    database = Database(settings.database_url, connect_timeout=settings.database_connect_timeout)
    try:
        await database.migrate()
    finally:
        await database.close()


def migrate_command(settings: Settings) -> int:
    """Upgrade to head; a one-line error and exit 1 when the database cannot be reached."""
    try:
        asyncio.run(_migrate(settings))
    except Exception as exc:
        text = str(exc).strip().splitlines()
        print(
            f"error: migration failed: {type(exc).__name__}: {text[0] if text else ''}".rstrip(),
            file=sys.stderr,
        )
        return 1
    print("database at the newest schema")
    return 0


def serve_command(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run uvicorn with the app factory; workers each build their own app."""
    import uvicorn

    # Migrate once here so several workers do not all race to create the same tables.
    if workers > 1 and settings.auto_migrate and migrate_command(settings) != 0:
        print("warning: starting anyway; workers keep retrying the migration", file=sys.stderr)
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
        return migrate_command(settings)
    return serve_command(settings, args.host, args.port, args.workers)


if __name__ == "__main__":
    sys.exit(main())
