"""`python -m chaos demo`: the service with a filled catalogue on loopback, to browse offline.

Starts what `python -m chaos stack` starts (the fake BGG and image CDN behind their TCP
proxies, the alert receiver, one `python -m system serve` on SQLite in a temp folder), with
the fake BGG also answering the 40 games of the real collection fixture. Then it bulk-imports
every game the fake BGG has real data for (those 40 and the 5 `thing` fixtures) through
`POST /api/admin/games/import`, waits (bounded by `--import-timeout`, printing progress) until
each is in the catalogue with its thumbnail downloaded, prints the URLs to open, and stays up
until Ctrl-C or SIGTERM (or `--duration` seconds, or not at all with `--exit-after-import`).
Nothing listens beyond 127.0.0.1; the catalogue goes when the demo stops.

Exit codes: 0 stopped cleanly (a signal, `--duration` or `--exit-after-import`), 1 the import
did not complete in time (the counts are printed), 2 bad arguments or a part that would not
start (one line on stderr). Every process and server is stopped on each of these paths.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos import interrupts
from chaos.arguments import bounded_float
from chaos.client import ServiceClient
from chaos.service import HarnessError
from chaos.stack import Options, Stack
from chaos.ui import stderr

DEFAULT_LOG_DIR = Path("var/chaos/demo")
DEFAULT_IMPORT_TIMEOUT = 120.0
#: The variable the admin token is read from, as for `python -m chaos stack`.
TOKEN_ENV = "CHAOS_ADMIN_TOKEN"  # noqa: S105
LABEL = "demo"
READY_LINE = "demo ready: Ctrl-C (or SIGTERM) stops everything"
#: How often the catalogue is read while the import runs.
POLL_SECONDS = 0.5
#: The public list's largest page (`system.api.public.MAX_PAGE_SIZE`).
PAGE = 100

#: What to open, in the order printed: (label, path, needs the admin token).
BROWSE = (
    ("home", "/", False),
    ("API docs", "/docs", False),
    ("API reference", "/redoc", False),
    ("catalogue", "/api/public/games?limit=50&sort=rank", False),
    ("readiness", "/health/ready", False),
    ("metrics", "/metrics", False),
    ("jobs", "/api/admin/monitoring/jobs", True),
    ("failures", "/api/admin/monitoring/background-failures", True),
    ("breakers", "/api/admin/monitoring/circuit-breakers", True),
    ("alerts", "/api/admin/monitoring/alerts", True),
)


_positive_seconds = bounded_float(
    0,
    86_400,
    invalid="not a number of seconds: {text!r}",
    out_of_range="must be more than 0 and at most 86400: {text}",
)


def add_parser(commands: Any, types: dict[str, Any]) -> None:
    """Add `demo` to the `python -m chaos` sub-commands (`types`: cli's argument types)."""
    demo = commands.add_parser(
        "demo", help="fakes and the service on loopback with a filled catalogue, to browse"
    )
    demo.add_argument(
        "--service-port",
        type=types["port"],
        default=None,
        metavar="PORT",
        help="the service's port",
    )
    demo.add_argument(
        "--admin-token",
        default=os.environ.get(TOKEN_ENV),
        help=f"the service's admin token (default ${TOKEN_ENV}; with neither, a fresh one)",
    )
    demo.add_argument(
        "--import-timeout",
        type=_positive_seconds,
        default=DEFAULT_IMPORT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long the import may take (default {DEFAULT_IMPORT_TIMEOUT:g} s)",
    )
    bound = demo.add_mutually_exclusive_group()
    bound.add_argument(
        "--exit-after-import",
        action="store_true",
        help="stop once the catalogue is filled (for scripts)",
    )
    bound.add_argument(
        "--duration",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stay up this long after the import, then stop (default: until Ctrl-C)",
    )
    demo.add_argument(
        "--log-dir",
        type=Path,
        default=DEFAULT_LOG_DIR,
        help=f"the service's log (default {DEFAULT_LOG_DIR})",
    )


@dataclass(frozen=True)
class Progress:
    """How far the import has come."""

    wanted: int
    games: int
    thumbnails: int

    @property
    def done(self) -> bool:
        """Every game is in the catalogue with its thumbnail."""
        return self.games == self.thumbnails == self.wanted

    def line(self) -> str:
        """One line for the terminal."""
        return f"games {self.games}/{self.wanted}, thumbnails {self.thumbnails}/{self.wanted}"


async def progress(client: ServiceClient, bgg_ids: set[int]) -> Progress:
    """The imported games among `bgg_ids`, and those with their thumbnail stored."""
    games: list[dict[str, Any]] = []
    offset = 0
    while True:
        call = await client.call(
            "GET", "/api/public/games", params={"limit": PAGE, "offset": offset}, time_limit=5
        )
        if call.status != 200 or not isinstance(call.body, dict):
            raise HarnessError(f"the catalogue answered {call.status or call.error}")
        games += call.body["items"]
        offset += PAGE
        if offset >= int(call.body["total"]):
            break
    mine = [game for game in games if game["bgg_id"] in bgg_ids]
    with_thumbnail = sum(1 for game in mine if game["has_thumbnail"])
    return Progress(len(bgg_ids), len(mine), with_thumbnail)


async def fill(client: ServiceClient, bgg_ids: list[int], within: float) -> Progress:
    """Bulk-import `bgg_ids` and wait until each is a game with its thumbnail; the last
    progress (not done when `within` seconds ran out)."""
    accepted = await client.bulk_import(bgg_ids, time_limit=30)
    if accepted.status != 202:
        raise HarnessError(f"the bulk import answered {accepted.status or accepted.error}")
    print(f"importing {len(bgg_ids)} games from the fake BGG (bulk import, one job each)")
    wanted = set(bgg_ids)
    deadline = time.monotonic() + within
    shown: Progress | None = None
    while True:
        now = await progress(client, wanted)
        if now != shown:
            print(f"  {now.line()}", flush=True)
            shown = now
        if now.done or time.monotonic() >= deadline:
            return now
        await asyncio.sleep(POLL_SECONDS)


def print_urls(url: str, stack: Stack, *, token_made: bool) -> None:
    """Where to look, the admin token to use, and the fakes' addresses."""
    print()
    for label, path, admin in BROWSE:
        print(f"  {label:<14} {url}{path}{'   (admin)' if admin else ''}")
    if token_made:
        print(f"\nadmin token (made for this demo): {stack.token}")
    else:
        print(f"\nadmin token: the one given (--admin-token / ${TOKEN_ENV})")
    token = stack.token if token_made else f"${TOKEN_ENV}"
    print(f'  curl -H "Authorization: Bearer {token}" {url}/api/admin/monitoring/jobs')
    print("  in /docs: Authorize, paste the token, then try any admin route")
    where = stack.addresses()
    print(f"\n  {'fake BGG':<14} {where['bgg_base_url']}")
    print(f"  {'fake CDN':<14} {where['cdn_url']}")


async def _run(stack: Stack, args: argparse.Namespace) -> int:
    started = time.monotonic()
    deployment = await stack.deployment("main", LABEL, port=args.service_port)
    client = deployment.client
    print(f"service up at {client.url} ({time.monotonic() - started:.1f} s)", flush=True)
    bgg_ids = stack.bgg.catalogue.real_ids
    done = await fill(client, bgg_ids, args.import_timeout)
    if not done.done:
        stderr(
            f"error: the import did not complete within {args.import_timeout:g} s: {done.line()}"
        )
        return 1
    print(f"catalogue filled in {time.monotonic() - started:.1f} s")
    print_urls(client.url, stack, token_made=args.admin_token is None)
    if args.exit_after_import:
        return 0
    print(READY_LINE, flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), args.duration)  # None: until a signal
    return 0


async def _foreground(stack: Stack, args: argparse.Namespace) -> int:
    task = asyncio.create_task(_run(stack, args))
    try:
        with interrupts.calling(task.cancel):
            return await task
    except asyncio.CancelledError:
        return 0
    finally:
        await stack.aclose()


def demo_command(args: argparse.Namespace) -> int:
    """The `demo` command: start, fill, show, wait, stop everything."""
    options = Options(
        seed=1,
        report_dir=args.log_dir,
        admin_token=args.admin_token,
        service_port=args.service_port,
        collection_games=True,
    )
    with interrupts.raising():
        stack = Stack(options)
        code = 2
        try:
            stack.start()
            code = asyncio.run(_foreground(stack, args))
            stderr("stopping: every process and server of the demo")
        except HarnessError as exc:
            stderr(f"error: {exc}")
        except (interrupts.Interrupted, KeyboardInterrupt):
            stderr("interrupted during start-up: stopping everything")
            code = 0
        finally:
            stack.close()
    return code
