"""Shared breaker state through a real redis-server, and life without it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chaos.proxy import ProxyServer
from system.resilience.breaker import AsyncCircuitBreaker, CircuitOpenError
from system.resilience.redis_store import (
    FailoverBreakerStore,
    RedisBreakerStore,
    breaker_key,
    redis_client,
)
from tests.services import RedisServer, hung_server, redis_server
from tests.support.waiting import eventually


class Worker:
    """One process's view: its own client, store and breaker, as a second worker has."""

    def __init__(self, url: str, key: str, *, timeout: float = 0.5) -> None:
        # Generous: a loaded CI machine must not turn a slow answer into a failover.
        self.client = redis_client(url, timeout=timeout)
        self.store = FailoverBreakerStore(
            RedisBreakerStore(self.client, key, timeout=timeout),
            breaker="BGG API",
            probe_interval=0.05,
        )
        self.breaker = AsyncCircuitBreaker(
            "BGG API", fail_max=3, reset_timeout=60, store=self.store
        )

    async def fail(self) -> None:
        with pytest.raises(ConnectionError):
            async with self.breaker.guard():
                raise ConnectionError("down")

    async def close(self) -> None:
        await self.store.aclose()
        await self.client.aclose()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as s:
        yield s


@pytest.fixture
async def workers(server: RedisServer) -> AsyncIterator[tuple[Worker, Worker]]:
    key = breaker_key("test", "BGG API")
    a, b = Worker(server.url, key), Worker(server.url, key)
    yield a, b
    await a.close()
    await b.close()


async def test_failures_seen_by_one_worker_open_the_breaker_for_the_other(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    await a.fail()
    await b.fail()
    await a.fail()  # the third failure between them: exactly fail_max
    with pytest.raises(CircuitOpenError):
        async with b.breaker.guard():
            pass
    snap = await b.breaker.snapshot()
    assert (snap.state, snap.failures) == ("open", 3)
    assert [t.to_state for t in b.breaker.transitions] == ["open"]


async def test_without_redis_each_worker_keeps_its_own_state_and_resyncs(
    server: RedisServer, workers: tuple[Worker, Worker], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = workers
    await a.fail()
    server.stop()
    with caplog.at_level(logging.WARNING):
        # Redis is gone: the worker carries on from the state it last knew (1 failure).
        await a.fail()
        await a.fail()
    assert a.store.mode == "local"
    assert (await a.breaker.snapshot()).state == "open", "local breaker must still open"
    lost = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(lost) == 1, "the loss is logged once"
    async with b.breaker.guard():  # b knows nothing of a's failures, and keeps serving
        pass
    assert b.store.mode == "local"

    server.start()
    await eventually(
        lambda: (a.store.mode, b.store.mode),
        "both to resync",
        until=lambda m: m == ("redis", "redis"),
    )
    # a saw the outage: its open state won over Redis's closed one, and b now sees it too.
    assert (await b.breaker.snapshot()).state == "open"
    with pytest.raises(CircuitOpenError):
        async with b.breaker.guard():
            pass


async def test_calls_in_flight_when_redis_goes_log_the_loss_once(
    server: RedisServer, workers: tuple[Worker, Worker], caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = workers
    await a.breaker.snapshot()
    server.stop()
    with caplog.at_level(logging.WARNING):
        await asyncio.gather(*(a.store.load() for _ in range(10)))
    lost = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in lost]
    assert a.store.mode == "local"


async def test_a_hung_redis_costs_one_short_timeout() -> None:
    """A Redis that accepts and never answers is given up on after REDIS_TIMEOUT."""
    async with hung_server() as (port, accepted):
        worker = Worker(f"redis://127.0.0.1:{port}/0", "k", timeout=0.05)
        try:

            async def guarded() -> None:
                async with worker.breaker.guard():
                    pass

            # Without REDIS_TIMEOUT this would wait for the hung server for ever.
            await asyncio.wait_for(guarded(), 10)
            assert worker.store.mode == "local"
            assert len(accepted) == 1, "one connection, one timeout: a hung Redis is not retried"
        finally:
            await worker.close()


async def test_no_dead_connection_survives_a_network_cut(
    server: RedisServer, proxies: ProxyServer
) -> None:
    """Connections cut while idle in the pool must not fail the first commands afterwards
    (a command on a dead connection cannot be retried safely, so it would fall back)."""
    proxies.create("redis-cut", ("127.0.0.1", server.port))
    host, port = proxies.address("redis-cut")
    worker = Worker(f"redis://{host}:{port}/0", breaker_key("cut", "BGG API"))
    try:
        await asyncio.gather(*(worker.breaker.snapshot() for _ in range(4)))  # 4 pooled
        proxies.down("redis-cut")
        await worker.breaker.snapshot()
        assert worker.store.mode == "local"
        proxies.up("redis-cut")
        await eventually(lambda: worker.store.mode, "reconnection", until=lambda m: m == "redis")
        await asyncio.gather(*(worker.breaker.snapshot() for _ in range(8)))
        assert worker.store.mode == "redis", "a stale pooled connection failed a command"
    finally:
        await worker.close()
