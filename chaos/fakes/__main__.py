"""`python -m chaos.fakes {bgg,cdn} [--host 127.0.0.1] [--port N] [--seed N] [--cdn-url URL]`.

Runs one fake in the foreground until Ctrl-C / SIGTERM (uvicorn shuts down gracefully, then
re-raises the signal, so SIGTERM ends the process with the SIGTERM status). On start it prints
one line, `<kind> listening on <url>` (for bgg followed by `BGG_BASE_URL=<url>/xmlapi2`), so a
parent process can read the port when `--port 0` was given. Bad arguments: one line on stderr and
exit code 2; a port that cannot be bound: one line and exit code 1.
"""

from __future__ import annotations

import argparse
import sys

from chaos.arguments import Parser, checked, http_url, port
from chaos.fakes.bgg import bgg_base_url, create_bgg_app
from chaos.fakes.cdn import create_cdn_app
from chaos.fakes.server import bind_socket, check_loopback, run_foreground


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m chaos.fakes", description="Run a fake upstream.")
    p.add_argument("kind", choices=("bgg", "cdn"), help="which fake to run")
    p.add_argument(
        "--host", type=checked(check_loopback), default="127.0.0.1", help="loopback address"
    )
    p.add_argument("--port", type=port(), default=0, help="TCP port (0: any free port)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault engine")
    p.add_argument("--cdn-url", type=http_url, default=None, help="bgg only: fake CDN base URL")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.kind == "cdn" and args.cdn_url is not None:
        parser().error("--cdn-url only applies to bgg")
    app = (
        create_bgg_app(seed=args.seed, cdn_base_url=args.cdn_url)
        if args.kind == "bgg"
        else create_cdn_app(seed=args.seed)
    )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"python -m chaos.fakes: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    extra = f" BGG_BASE_URL={bgg_base_url(url)}" if args.kind == "bgg" else ""
    print(f"{args.kind} listening on {url}{extra}", flush=True)
    try:
        run_foreground(app, sock)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
