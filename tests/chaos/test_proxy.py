"""The TCP fault proxy: every toxic observed over real sockets, down/up, the control API."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from pydantic import ValidationError

from chaos.fakes import RunningServer, bgg_base_url
from chaos.proxy import (
    Latency,
    Proxy,
    ProxyExists,
    ProxyNotFound,
    ProxyServer,
    ResetPeer,
    Timeout,
    ToxicExists,
    ToxicNotFound,
    parse_toxic,
)

Address = tuple[str, int]

# A toxic this long cannot end during a test, however slow the machine: while it holds, a
# short look at the socket must find nothing. How long toxics take is measured by
# `python -m benchmarks.proxy_toxics`, not asserted here.
HOLD_MS = 30_000
LOOK = 0.2


@pytest.fixture
def echo_proxy(proxies: ProxyServer, echo: Address) -> Address:
    proxies.create("echo", upstream=echo)
    return proxies.address("echo")


def connect(address: Address, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            break
        data += piece
    return data


def poke(address: Address) -> bytes:
    """Connect, send a byte, read the answer."""
    with connect(address) as sock:
        sock.sendall(b"x")
        return sock.recv(10)


def recv_all(sock: socket.socket) -> bytes:
    data = b""
    while piece := sock.recv(65536):
        data += piece
    return data


def round_trip(address: Address, payload: bytes = b"ping") -> None:
    """The payload comes back whole through `address`."""
    with connect(address, timeout=5) as sock:
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload


def assert_held(sock: socket.socket) -> None:
    """Nothing (no byte, no close, no reset) arrives on `sock` for a short look."""
    previous = sock.gettimeout()
    sock.settimeout(LOOK)
    try:
        with pytest.raises(TimeoutError):
            sock.recv(1)
    finally:
        sock.settimeout(previous)


def assert_held_on_a_new_connection(address: Address, payload: bytes = b"ping") -> None:
    with connect(address) as sock:
        sock.sendall(payload)
        assert_held(sock)


def test_pipes_bytes_both_ways(proxies: ProxyServer, echo_proxy: Address) -> None:
    payload = bytes(range(256)) * 1000
    with connect(echo_proxy) as sock:
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
    info = proxies.info("echo")
    assert info["connections"]["total"] == 1
    assert info["enabled"] is True
    assert info["listen"] == f"127.0.0.1:{echo_proxy[1]}"


def test_latency(proxies: ProxyServer, echo_proxy: Address) -> None:
    proxies.add_toxic("echo", Latency(latency=HOLD_MS, name="held"))
    assert_held_on_a_new_connection(echo_proxy)
    proxies.remove_toxic("echo", "held")
    proxies.add_toxic("echo", Latency(latency=HOLD_MS, direction="upstream", name="held"))
    assert_held_on_a_new_connection(echo_proxy)
    proxies.remove_toxic("echo", "held")
    # Latency delays the bytes, and delivers them whole, both ways at once.
    proxies.add_toxic("echo", Latency(latency=20, jitter=10))
    proxies.add_toxic("echo", Latency(latency=10, direction="upstream"))
    round_trip(echo_proxy, bytes(range(256)) * 100)


def test_latency_shifts_the_stream_instead_of_adding_up(
    proxies: ProxyServer, echo_proxy: Address
) -> None:
    proxies.add_toxic("echo", Latency(latency=500))
    # Five writes a little apart: shifted, all are in by about 0.55 s; added up, the last
    # would come after 2.5 s, and the read's timeout (2 s, far from both) would fire.
    with connect(echo_proxy, timeout=2) as sock:
        for index in range(5):
            sock.sendall(bytes([index]) * 10)
            time.sleep(0.01)
        assert recv_exactly(sock, 50) == b"".join(bytes([i]) * 10 for i in range(5))


def test_reset_peer_new_connections(proxies: ProxyServer, echo_proxy: Address) -> None:
    proxies.add_toxic("echo", ResetPeer(timeout=0))
    with pytest.raises(ConnectionResetError):
        poke(echo_proxy)


def test_reset_peer_open_connection_after_a_delay(
    proxies: ProxyServer, echo_proxy: Address
) -> None:
    with connect(echo_proxy) as sock:
        sock.sendall(b"one")
        assert recv_exactly(sock, 3) == b"one"
        proxies.add_toxic("echo", ResetPeer(timeout=HOLD_MS, name="reset"))
        assert_held(sock)  # not reset at once
        proxies.remove_toxic("echo", "reset")
        proxies.add_toxic("echo", ResetPeer(timeout=30))
        with pytest.raises(ConnectionResetError):
            sock.recv(10)


def test_reset_peer_seen_by_httpx(proxies: ProxyServer, bgg: RunningServer) -> None:
    proxies.create("bgg", upstream=(bgg.host, bgg.port))
    proxies.add_toxic("bgg", ResetPeer(timeout=0))
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.TransportError):
        client.get(proxies.url("bgg") + "/thing?id=1")


def test_blackhole_makes_a_client_read_time_out(proxies: ProxyServer, bgg: RunningServer) -> None:
    proxies.create("bgg", upstream=(bgg.host, bgg.port))
    proxies.add_toxic("bgg", {"type": "timeout", "direction": "both"})
    with httpx.Client(trust_env=False, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(proxies.url("bgg") + "/thing?id=1")
        proxies.remove_toxic("bgg", "timeout_both")
        assert client.get(proxies.url("bgg") + "/thing?id=1").status_code == 200


def test_timeout_closes_the_connection_after_its_timeout(
    proxies: ProxyServer, echo_proxy: Address
) -> None:
    proxies.add_toxic("echo", Timeout(timeout=HOLD_MS, direction="both", name="hole"))
    with connect(echo_proxy, timeout=5) as sock:
        sock.sendall(b"lost")
        assert_held(sock)  # swallowed, and not closed before its timeout
        proxies.remove_toxic("echo", "hole")
        proxies.add_toxic("echo", Timeout(timeout=50, direction="both"))
        assert recv_all(sock) == b""


def test_down_refuses_and_up_works_again_on_the_same_port(
    proxies: ProxyServer, echo_proxy: Address
) -> None:
    open_conn = connect(echo_proxy)
    open_conn.sendall(b"a")
    assert recv_exactly(open_conn, 1) == b"a"

    info = proxies.down("echo")
    assert info["enabled"] is False
    with pytest.raises(ConnectionRefusedError):
        connect(echo_proxy)
    try:  # the open connection was cut
        assert open_conn.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        open_conn.close()

    assert proxies.up("echo")["listen"] == f"127.0.0.1:{echo_proxy[1]}"
    round_trip(echo_proxy)
    proxies.up("echo")  # idempotent


async def test_toxics_apply_per_direction() -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Speaks first, so its bytes travel downstream whatever happens upstream.
        writer.write(b"hello")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    async with server, Proxy(upstream=(host, port), name="greet") as proxy:
        proxy.add_toxic(Timeout(direction="upstream"))  # swallows what the client sends
        reader, writer = await asyncio.open_connection(*proxy.listen)
        writer.write(b"lost")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        writer.close()
        proxy.clear_toxics()
        proxy.add_toxic(Latency(latency=HOLD_MS, direction="downstream"))
        reader, writer = await asyncio.open_connection(*proxy.listen)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(5), LOOK)
        writer.close()


def test_toxicity_is_drawn_per_connection_from_the_seed(
    proxies: ProxyServer, echo: Address
) -> None:
    def pattern() -> list[bool]:
        proxies.create("p", upstream=echo)
        proxies.add_toxic("p", ResetPeer(timeout=0, toxicity=0.5))
        hits = []
        for _ in range(16):
            try:
                poke(proxies.address("p"))
            except ConnectionResetError:
                hits.append(True)
            else:
                hits.append(False)
        proxies.remove("p")
        return hits

    first = pattern()
    assert set(first) == {True, False}
    assert pattern() == first


def test_removing_a_toxic_heals_open_connections(proxies: ProxyServer, echo_proxy: Address) -> None:
    with connect(echo_proxy) as sock:
        proxies.add_toxic("echo", Latency(latency=HOLD_MS, name="slow"))
        assert [t.key for t in proxies.toxics("echo")] == ["slow"]
        proxies.remove_toxic("echo", "slow")
        sock.settimeout(5)  # far below the removed toxic's 30 s
        sock.sendall(b"q")
        assert recv_exactly(sock, 1) == b"q"


def test_errors_of_the_python_api(proxies: ProxyServer, echo: Address) -> None:
    proxies.create("e", upstream=echo)
    with pytest.raises(ProxyExists):
        proxies.create("e", upstream=echo)
    with pytest.raises(ProxyNotFound):
        proxies.info("nope")
    proxies.add_toxic("e", type="latency", latency=10)
    with pytest.raises(ToxicExists):
        proxies.add_toxic("e", Latency(latency=5))
    with pytest.raises(ToxicNotFound):
        proxies.remove_toxic("e", "nope")
    with pytest.raises(ValidationError):
        proxies.add_toxic("e", {"type": "latency", "latency": -1})
    with pytest.raises(ValueError, match="loopback"):
        proxies.create("f", upstream=echo, listen=("0.0.0.0", 0))


def test_unreachable_upstream_resets_the_client(proxies: ProxyServer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()
    proxies.create("dead", upstream=dead)
    # the reset may even beat connect() back to the caller
    with pytest.raises(ConnectionResetError):
        poke(proxies.address("dead"))


def test_reset_clears_toxics_and_brings_proxies_up(
    proxies: ProxyServer, echo_proxy: Address
) -> None:
    proxies.add_toxic("echo", ResetPeer(timeout=0))
    proxies.down("echo")
    proxies.reset()
    info = proxies.info("echo")
    assert (info["enabled"], info["toxics"]) == (True, [])
    round_trip(echo_proxy)


def test_fronts_the_fake_bgg(proxies: ProxyServer, bgg: RunningServer) -> None:
    proxies.create("bgg", upstream=f"{bgg.host}:{bgg.port}")
    with httpx.Client(trust_env=False) as client:
        direct = client.get(bgg_base_url(bgg.url) + "/thing?id=28720&stats=1")
        proxied = client.get(bgg_base_url(proxies.url("bgg")) + "/thing?id=28720&stats=1")
        assert proxied.status_code == 200
        assert proxied.content == direct.content
        proxies.add_toxic("bgg", Latency(latency=HOLD_MS))
        with pytest.raises(httpx.ReadTimeout):
            client.get(proxies.url("bgg") + "/thing?id=1", timeout=LOOK)


def test_toxic_json_is_validated() -> None:
    toxic = parse_toxic({"type": "timeout", "direction": "upstream", "timeout": 50})
    assert isinstance(toxic, Timeout)
    assert (toxic.direction, toxic.timeout, toxic.key) == ("upstream", 50.0, "timeout_upstream")
    for bad in ({"type": "latency", "latncy": 1}, {"type": "earthquake"}, {"type": "slicer"}):
        with pytest.raises(ValidationError):
            parse_toxic(bad)


async def test_proxy_on_the_callers_event_loop(echo: Address) -> None:
    async with Proxy(upstream=echo, name="local", seed=1) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.listen)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        proxy.add_toxic(Latency(latency=HOLD_MS, name="held"))
        writer.write(b"yo")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(2), LOOK)
        proxy.remove_toxic("held")
        await proxy.down()
        assert await reader.read() == b""
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*proxy.listen)
        await proxy.up()
        reader, writer = await asyncio.open_connection(*proxy.listen)
        writer.write(b"ok")
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        await writer.wait_closed()


def test_control_http_api(proxy_server: ProxyServer, proxies: ProxyServer, echo: Address) -> None:
    base = proxy_server.control_url
    assert base is not None
    with httpx.Client(base_url=base, trust_env=False, timeout=5) as api:
        assert api.get("/health").json()["status"] == "ok"
        created = api.post("/proxies", json={"name": "h", "upstream": f"{echo[0]}:{echo[1]}"})
        assert created.status_code == 201
        listen = created.json()["listen"]
        host, port = listen.rsplit(":", 1)
        assert api.get("/proxies").json()["h"]["upstream"] == f"{echo[0]}:{echo[1]}"

        toxic = {"type": "latency", "latency": HOLD_MS, "direction": "downstream", "name": "lat"}
        added = api.post("/proxies/h/toxics", json=toxic)
        assert added.status_code == 201
        assert added.json() == {**toxic, "toxicity": 1.0, "jitter": 0.0, "latency": HOLD_MS}
        assert_held_on_a_new_connection((host, int(port)))
        assert [t["name"] for t in api.get("/proxies/h/toxics").json()] == ["lat"]
        assert api.post("/proxies/h/toxics", json=toxic).status_code == 409
        assert api.delete("/proxies/h/toxics/lat").status_code == 204
        assert api.delete("/proxies/h/toxics/lat").status_code == 404
        api.post("/proxies/h/toxics", json={"type": "reset_peer"})
        assert api.delete("/proxies/h/toxics").status_code == 204
        assert api.get("/proxies/h").json()["toxics"] == []

        assert api.post("/proxies/h/down").json()["enabled"] is False
        with pytest.raises(ConnectionRefusedError):
            connect((host, int(port)))
        assert api.post("/proxies/h/up").json()["enabled"] is True
        round_trip((host, int(port)))
        assert api.post("/reset").json() == {"status": "reset"}

        bad = [
            api.post("/proxies/h/toxics", content=b"{"),
            api.post("/proxies/h/toxics", json=[1]),
            api.post("/proxies/h/toxics", json={"type": "latency", "toxicity": 3}),
            api.post("/proxies/h/toxics", json={"type": "nope"}),
            api.post("/proxies", json={"name": "x"}),
            api.post("/proxies", json={"name": "x", "upstream": "nohost"}),
            api.post("/proxies", json={"name": "x", "upstream": "a:1", "listen": "8.8.8.8:0"}),
        ]
        assert [r.status_code for r in bad] == [422] * len(bad)
        assert all(r.json()["detail"] for r in bad)
        assert api.post("/proxies/missing/down").status_code == 404
        assert api.post("/proxies", json={"name": "h", "upstream": "a:1"}).status_code == 409
        assert api.delete("/proxies/h").status_code == 204
        assert api.get("/proxies/h").status_code == 404
