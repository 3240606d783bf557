"""`python -m chaos.proxy [--host H] [--control-port N] [--seed N] --proxy NAME=UPSTREAM[@PORT]`.

Runs a `ProxyServer` in the foreground until Ctrl-C / SIGTERM. `UPSTREAM` is `host:port`;
`@PORT` fixes the listening port (default: a free one). Prints one line per proxy,
`proxy NAME listening on HOST:PORT -> UPSTREAM`, then `control API on URL`. Bad arguments:
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from chaos.arguments import Parser, checked, port
from chaos.fakes.server import check_loopback
from chaos.proxy.proxy import parse_address
from chaos.proxy.server import ProxyServer


def _proxy_spec(value: str) -> tuple[str, str, int]:
    name, sep, rest = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT[@PORT], got {value!r}")
    upstream, _, listen = rest.partition("@")
    try:
        parse_address(upstream)
        listen_port = int(listen) if listen else 0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad proxy {value!r}: {exc}") from None
    if not 0 <= listen_port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    return name, upstream, listen_port


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m chaos.proxy", description="Run TCP fault proxies.")
    p.add_argument(
        "--host", type=checked(check_loopback), default="127.0.0.1", help="loopback address"
    )
    p.add_argument(
        "--control-port",
        type=port(out_of_range="invalid port {text!r}"),
        default=0,
        help="control API port (0: free)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for toxicity draws")
    p.add_argument("--proxy", type=_proxy_spec, action="append", default=[], metavar="SPEC")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = ProxyServer(seed=args.seed, host=args.host, control_port=args.control_port)
    try:
        server.start()
    except RuntimeError as exc:
        print(f"python -m chaos.proxy: {exc}", file=sys.stderr)
        return 1
    try:
        for name, upstream, listen_port in args.proxy:
            info = server.create(name, upstream, (args.host, listen_port))
            print(f"proxy {name} listening on {info['listen']} -> {upstream}", flush=True)
        print(f"control API on {server.control_url}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        print(f"python -m chaos.proxy: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
