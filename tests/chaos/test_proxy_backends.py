"""The proxy in front of the real local PostgreSQL and Redis (skipped when not reachable).

PostgreSQL: `TEST_DATABASE_URL` if set, else `postgres@127.0.0.1:5432/test` (trust auth).
Redis: `TEST_REDIS_URL` if set, else `127.0.0.1:6379`. Redis keys carry a unique prefix and are
deleted; nothing else in either server is touched.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.proxy import Latency, ProxyServer, ResetPeer

# Latency no test outlives: an answer held by it is seen not to come, never timed.
HOLD_MS = 30_000


def _target(env: str, default: str) -> tuple[str, int, str]:
    url = os.environ.get(env) or default
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (5432 if parts.scheme.startswith("postgres") else 6379)
    return host, port, url


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


PG_HOST, PG_PORT, PG_URL = _target("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST, REDIS_PORT, _ = _target("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _pg_params() -> dict[str, object]:
    parts = urlsplit(PG_URL)
    return {
        "user": parts.username or "postgres",
        "password": parts.password,
        "database": (parts.path or "/test").lstrip("/") or "test",
    }


@pytest.fixture
def pg_proxy(proxies: ProxyServer) -> tuple[str, int]:
    if not _reachable(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}")
    proxies.create("pg", upstream=(PG_HOST, PG_PORT))
    return proxies.address("pg")


@pytest.fixture
def redis_proxy(proxies: ProxyServer) -> tuple[str, int]:
    if not _reachable(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}")
    proxies.create("redis", upstream=(REDIS_HOST, REDIS_PORT))
    return proxies.address("redis")


async def _select_one(host: str, port: int) -> int:
    conn = await asyncpg.connect(host=host, port=port, ssl=False, timeout=3, **_pg_params())
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_through_the_proxy_down_and_up(
    proxies: ProxyServer, pg_proxy: tuple[str, int]
) -> None:
    host, port = pg_proxy
    assert await _select_one(host, port) == 1

    open_conn = await asyncpg.connect(host=host, port=port, ssl=False, timeout=3, **_pg_params())
    proxies.down("pg")
    with pytest.raises(ConnectionRefusedError):
        await _select_one(host, port)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await open_conn.fetchval("SELECT 1", timeout=2)  # the open connection was cut
    await open_conn.close(timeout=1)

    proxies.up("pg")
    assert await _select_one(host, port) == 1


@pytest.mark.postgres
async def test_postgres_latency_and_reset(proxies: ProxyServer, pg_proxy: tuple[str, int]) -> None:
    host, port = pg_proxy
    conn = await asyncpg.connect(host=host, port=port, ssl=False, timeout=3, **_pg_params())
    try:
        assert await conn.fetchval("SELECT 1") == 1
        proxies.add_toxic("pg", Latency(latency=HOLD_MS))
        query = asyncio.ensure_future(conn.fetchval("SELECT 2"))
        done, _ = await asyncio.wait({query}, timeout=0.2)
        assert not done, "the answer was not held by the latency"
        proxies.add_toxic("pg", ResetPeer(timeout=0))  # cuts the held query's connection
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await asyncio.wait_for(query, 5)
    finally:
        conn.terminate()


@pytest.mark.redis
def test_redis_through_the_proxy(proxies: ProxyServer, redis_proxy: tuple[str, int]) -> None:
    host, port = redis_proxy
    prefix = f"chaos-proxy-test:{uuid.uuid4().hex}:"
    client = redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        assert client.ping() is True
        client.set(prefix + "k", b"v", ex=60)
        assert client.get(prefix + "k") == b"v"

        proxies.add_toxic("redis", Latency(latency=HOLD_MS))
        with (
            redis.Redis(
                host=host, port=port, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
            ) as held,
            pytest.raises(redis.TimeoutError),
        ):
            held.ping()
        proxies.clear_toxics("redis")

        proxies.down("redis")
        with (
            redis.Redis(
                host=host, port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
            ) as other,
            pytest.raises(redis.ConnectionError, match="refused"),
        ):
            other.ping()
        proxies.up("redis")
        assert client.ping() is True  # reconnects on the same port
    finally:
        client.delete(prefix + "k")
        assert client.exists(prefix + "k") == 0
        client.close()
