"""An asyncio TCP fault proxy with Toxiproxy-style toxics (latency, timeout, reset_peer).

Typical use from sync code::

    from chaos.proxy import Latency, ProxyServer

    with ProxyServer(seed=1) as proxies:
        proxies.create("pg", upstream="127.0.0.1:5432")
        host, port = proxies.address("pg")        # point the client here
        proxies.add_toxic("pg", Latency(latency=200))
        proxies.down("pg"); proxies.up("pg")      # refused, then accepted on the same port

or from a shell: `python -m chaos.proxy --proxy pg=127.0.0.1:5432 --control-port 8474`.
"""

from chaos.proxy.proxy import Proxy, ToxicExists, ToxicNotFound, parse_address
from chaos.proxy.server import ProxyExists, ProxyNotFound, ProxyServer
from chaos.proxy.toxics import (
    Direction,
    Latency,
    ResetPeer,
    Timeout,
    Toxic,
    parse_toxic,
    toxic_json,
)

__all__ = [
    "Direction",
    "Latency",
    "Proxy",
    "ProxyExists",
    "ProxyNotFound",
    "ProxyServer",
    "ResetPeer",
    "Timeout",
    "Toxic",
    "ToxicExists",
    "ToxicNotFound",
    "parse_address",
    "parse_toxic",
    "toxic_json",
]
