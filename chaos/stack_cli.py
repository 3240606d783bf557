"""`python -m chaos stack`: the harness's stack in the foreground, for Chaos Toolkit and demos.

Starts what `python -m chaos run` starts for one scenario and keeps it up until Ctrl-C or
SIGTERM: the fake BGG and the fake image CDN, the TCP fault proxy in front of each (and in
front of the database with `--database postgresql`), their control APIs, the alert receiver
and one service (`python -m system serve`, with the harness's short timings and any
`--service-env` on top), or nothing of ours with `--target URL`. Every URL is printed, and
the ones an experiment's `configuration` reads are written to `--env-file` (KEY=VALUE lines,
what `chaos run --var-file` loads). The admin token is never written anywhere: it comes from
`--admin-token` / `$CHAOS_ADMIN_TOKEN` (or, with neither, a fresh one is made and printed
once, for this stack only).

Exit codes: 0 stopped by Ctrl-C / SIGTERM after a clean teardown, 2 bad arguments or a part
that would not start (one line on stderr; whatever had started is stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from chaos import interrupts
from chaos.promises import HARNESS
from chaos.service import HarnessError, check_service_env
from chaos.stack import Options, Stack
from chaos.ui import stderr

#: The environment variables the experiments in `experiments/` read their configuration from.
ENV_KEYS = {
    "service_url": "CHAOS_SERVICE_URL",
    "bgg_control_url": "CHAOS_BGG_CONTROL_URL",
    "cdn_control_url": "CHAOS_CDN_CONTROL_URL",
    "proxy_control_url": "CHAOS_PROXY_CONTROL_URL",
    "database_proxy": "CHAOS_DATABASE_PROXY",
}
#: The variable the admin token is read from (the name, not a token).
TOKEN_ENV = "CHAOS_ADMIN_TOKEN"  # noqa: S105
DEFAULT_ENV_FILE = Path("var/chaos/stack.env")
DEFAULT_LOG_DIR = Path("var/chaos/stack")
#: The deployment label of the stack's service: its database proxy is `pg-service`.
LABEL = "service"
READY_LINE = "stack ready: Ctrl-C (or SIGTERM) stops everything"


def add_parser(commands: Any, types: dict[str, Any]) -> None:
    """Add `stack` to the `python -m chaos` sub-commands (`types`: cli's argument types)."""
    stack = commands.add_parser(
        "stack", help="fakes, proxies and the service in the foreground, every URL printed"
    )
    stack.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite (a file in a temp folder), or postgresql: a throw-away database behind "
        "the TCP proxy `pg-service`, so it can be cut (on --database-url's server, or "
        "$TEST_DATABASE_URL's)",
    )
    stack.add_argument(
        "--database-url",
        type=types["database_url"],
        default=None,
        help="the service's database (sqlite: used as is; postgresql: the server to make the "
        "throw-away database on)",
    )
    stack.add_argument(
        "--service-env",
        type=types["env_pair"],
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the service (a candidate config), as in `chaos run`",
    )
    stack.add_argument(
        "--target", type=types["url"], default=None, help="a service someone else started"
    )
    stack.add_argument(
        "--admin-token",
        default=os.environ.get(TOKEN_ENV),
        help=f"the service's admin token (default ${TOKEN_ENV}; with neither, a fresh one)",
    )
    port = types["port"]
    stack.add_argument("--service-port", type=port, default=None, help="the service's port")
    stack.add_argument("--bgg-port", type=port, default=None, help="the BGG proxy's port")
    stack.add_argument("--cdn-port", type=port, default=None, help="the CDN proxy's port")
    stack.add_argument(
        "--proxy-control-port", type=port, default=None, help="the TCP proxy control API's port"
    )
    stack.add_argument("--webhook-port", type=port, default=None, help="the alert receiver's port")
    stack.add_argument(
        "--env-file",
        type=Path,
        default=DEFAULT_ENV_FILE,
        help=f"where to write the experiments' URLs (default {DEFAULT_ENV_FILE}; removed on exit)",
    )
    stack.add_argument(
        "--log-dir",
        type=Path,
        default=DEFAULT_LOG_DIR,
        help=f"the service's log (default {DEFAULT_LOG_DIR})",
    )
    stack.add_argument("--seed", type=types["seed"], default=1, help="the fakes' seed")
    stack.add_argument(
        "--workers", type=types["workers"], default=1, help="uvicorn workers of the service"
    )


def _options(args: argparse.Namespace) -> tuple[Options, str | None]:
    """The stack's options, and the server of its PostgreSQL database (None: SQLite)."""
    if args.target is not None:
        if not args.admin_token:
            raise HarnessError(f"--target needs --admin-token (or {TOKEN_ENV})")
        if args.service_env:
            raise HarnessError("--service-env applies to a service the stack starts, not --target")
        if args.database != "sqlite" or args.database_url:
            raise HarnessError("--database/--database-url apply to a service the stack starts")
    check_service_env(HARNESS.service_env() | dict(args.service_env))
    postgres: str | None = None
    sqlite_url: str | None = None
    if args.database == "postgresql":
        postgres = args.database_url or os.environ.get("TEST_DATABASE_URL") or None
        if postgres is None or not postgres.startswith("postgresql"):
            raise HarnessError(
                "--database postgresql needs a server: --database-url postgresql+asyncpg://... "
                "or TEST_DATABASE_URL"
            )
    elif args.database_url is not None:
        if not args.database_url.startswith("sqlite"):
            raise HarnessError("a postgresql+asyncpg:// --database-url needs --database postgresql")
        sqlite_url = args.database_url
    options = flag_options(
        args,
        report_dir=args.log_dir,
        database_url=sqlite_url,
        postgres_url=postgres,
        proxy_control_port=args.proxy_control_port or 0,
    )
    return options, postgres


def flag_options(args: argparse.Namespace, **rest: Any) -> Options:
    """The `Options` that `run` and `stack` take alike from their flags, plus `rest`."""
    return Options(
        seed=args.seed,
        workers=args.workers,
        service_env=dict(args.service_env),
        target=args.target,
        admin_token=args.admin_token,
        # Fixed with --target (docs/chaos.md): the target is configured with them beforehand.
        bgg_port=args.bgg_port or (18001 if args.target else 0),
        cdn_port=args.cdn_port or (18002 if args.target else 0),
        service_port=args.service_port,
        webhook_port=args.webhook_port or 0,
        **rest,
    )


def env_values(stack: Stack, service_url: str, database_proxy: str | None) -> dict[str, str]:
    """What the experiments' `configuration` reads, by environment variable (no token)."""
    where = stack.addresses()
    values = {
        ENV_KEYS["service_url"]: service_url,
        ENV_KEYS["bgg_control_url"]: where["bgg_control_url"],
        ENV_KEYS["cdn_control_url"]: where["cdn_control_url"],
        ENV_KEYS["proxy_control_url"]: where["proxy_control_url"],
    }
    if database_proxy is not None:
        values[ENV_KEYS["database_proxy"]] = database_proxy
    return values


def _print_addresses(
    stack: Stack, values: dict[str, str], env_file: Path, *, token_made: bool
) -> None:
    where = stack.addresses()
    rows = [
        ("service", values[ENV_KEYS["service_url"]]),
        ("BGG (proxy)", where["bgg_base_url"]),
        ("BGG control", where["bgg_control_url"]),
        ("CDN (proxy)", where["cdn_url"]),
        ("CDN control", where["cdn_control_url"]),
        ("proxy control", where["proxy_control_url"]),
        ("alert webhook", where["webhook_url"]),
    ]
    if ENV_KEYS["database_proxy"] in values:
        proxy = values[ENV_KEYS["database_proxy"]]
        host, port = stack.proxies.address(proxy)
        rows.append(("database proxy", f"{proxy} on {host}:{port}"))
    for label, url in rows:
        print(f"{label:<15} {url}")
    if stack.options.target is not None:
        print("\nthe target must run with these settings (and its admin token):")
        for key, value in stack.target_env().items():
            if key != "ADMIN_TOKENS":
                print(f"  {key}={value}")
    print(f"\nexperiment configuration: {env_file}")
    if token_made:
        print(f"admin token (made for this stack): export {TOKEN_ENV}={stack.token}")
    print(f"  chaos run --no-version-check --var-file {env_file} experiments/bgg_outage.json")
    print(READY_LINE, flush=True)


def _write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `python -m chaos stack` while it runs; removed when it stops."]
    lines += [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


async def _serve(
    stack: Stack, args: argparse.Namespace, postgres: str | None, written: list[Path]
) -> None:
    kind = "postgresql" if postgres is not None else "main"
    deployment = await stack.deployment(kind, LABEL, port=args.service_port)
    proxy = f"pg-{LABEL}" if postgres is not None else None
    values = env_values(stack, deployment.client.url, proxy)
    _write_env(args.env_file, values)
    written.append(args.env_file)
    _print_addresses(stack, values, args.env_file, token_made=args.admin_token is None)
    await asyncio.Event().wait()  # until a signal cancels this task


async def _foreground(
    stack: Stack, args: argparse.Namespace, postgres: str | None, written: list[Path]
) -> None:
    task = asyncio.create_task(_serve(stack, args, postgres, written))
    try:
        with interrupts.calling(task.cancel), contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await stack.aclose()


def stack_command(args: argparse.Namespace) -> int:
    """The `stack` command: start everything, wait for Ctrl-C / SIGTERM, stop everything."""
    try:
        options, postgres = _options(args)
    except HarnessError as exc:
        stderr(f"error: {exc}")
        return 2
    if options.target is not None:
        from chaos.cli import _check_target

        try:
            _check_target(options.target, options.admin_token or "")
        except HarnessError as exc:
            stderr(f"error: {exc}")
            return 2
    with interrupts.raising():
        stack = Stack(options)
        code = 0
        written: list[Path] = []  # the env file, once this stack wrote it (never another's)
        try:
            stack.start()
            asyncio.run(_foreground(stack, args, postgres, written))
            stderr("stopping: every process and server of the stack")
        except HarnessError as exc:
            stderr(f"error: {exc}")
            code = 2
        except (interrupts.Interrupted, KeyboardInterrupt):
            stderr("interrupted during start-up: stopping everything")
        finally:
            stack.close()
            for path in written:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return code
