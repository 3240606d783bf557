"""FailoverBreakerStore step by step: Redis while it answers, memory while it is cut off.

Redis is reached through the harness's TCP proxy, so a test cuts the network and brings it
back while Redis keeps its data (a restarted private redis-server would come back empty and
hide whether anything was written back). A second client, not behind the proxy, reads what
Redis holds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from chaos.proxy import ProxyServer
from system.resilience.redis_store import (
    FailoverBreakerStore,
    RedisBreakerStore,
    breaker_key,
    redis_client,
)
from system.resilience.store import CLOSED, HALF_OPEN, OPEN, Snapshot
from tests.services import hung_server
from tests.support.waiting import eventually

T0 = 1_800_000_000.0
TIMEOUT = 1.0


@dataclass
class Setup:
    """The store under test (behind the proxy) and a direct view of the same Redis key."""

    store: FailoverBreakerStore
    redis: RedisBreakerStore
    proxies: ProxyServer
    proxy: str

    def cut(self) -> None:
        self.proxies.down(self.proxy)

    async def restore(self) -> None:
        self.proxies.up(self.proxy)
        await eventually(lambda: self.store.mode, "the store to reconnect", until="redis".__eq__)


@pytest.fixture
async def setup(redis_url: str, redis_namespace: str, proxies: ProxyServer) -> AsyncIterator[Setup]:
    url = urlsplit(redis_url)
    proxies.create("redis", (url.hostname or "127.0.0.1", url.port or 6379))
    host, port = proxies.address("redis")
    key = breaker_key(redis_namespace, "BGG API")
    behind: Redis = redis_client(f"redis://{host}:{port}{url.path or '/0'}", timeout=TIMEOUT)
    direct: Redis = redis_client(redis_url, timeout=TIMEOUT)
    store = FailoverBreakerStore(
        RedisBreakerStore(behind, key, timeout=TIMEOUT), breaker="BGG API", probe_interval=0.02
    )
    try:
        yield Setup(store, RedisBreakerStore(direct, key, timeout=TIMEOUT), proxies, "redis")
    finally:
        await store.aclose()
        await direct.delete(key)
        await behind.aclose()
        await direct.aclose()


async def _half_open_with_trial_a(setup: Setup) -> Snapshot:
    await setup.redis.reset(OPEN, T0)
    claimed, snap = await setup.store.try_begin_trial("a", 60.0, T0 + 61, 30.0)
    assert claimed and snap.trial_token == "a"
    return snap


async def test_while_redis_answers_every_step_is_redis_s_and_remembered(setup: Setup) -> None:
    store = setup.store

    async def agreed(snap: Snapshot) -> Snapshot:
        # What Redis answered is this worker's fallback too, should Redis go next.
        assert snap == await setup.redis.load() == store.local.snapshot
        return snap

    assert (await agreed(await store.record_failure(0, 3, T0))).failures == 1
    success = await agreed(await store.record_success(0))
    assert success.failures == 0, "a success of this generation resets the count"
    await agreed(await store.reset(OPEN, T0))
    claimed, snap = await store.try_begin_trial("a", 60.0, T0 + 30, 30.0)
    assert not claimed, "the reset timeout has not passed"
    claimed, snap = await store.try_begin_trial("a", 60.0, T0 + 61, 30.0)
    assert claimed
    assert (snap.state, snap.trial_token, snap.trial_until) == (HALF_OPEN, "a", T0 + 91)
    released = await agreed(await store.release_trial("a"))
    assert (released.state, released.trial_token, released.trial_until) == (HALF_OPEN, None, None)
    await store.try_begin_trial("b", 60.0, T0 + 62, 30.0)
    ended = await agreed(await store.end_trial("b", False, T0 + 63))
    assert (ended.state, ended.opened_at, ended.last_failure_at) == (OPEN, T0 + 63, T0 + 63)
    await store.try_begin_trial("c", 60.0, T0 + 124, 30.0)
    closed = await agreed(await store.end_trial("c", True, T0 + 125))
    assert (closed.state, closed.failures, closed.opened_at) == (CLOSED, 0, None)
    assert store.mode == "redis"


async def test_while_redis_is_cut_off_every_step_is_this_worker_s(setup: Setup) -> None:
    store = setup.store
    await store.record_failure(0, 3, T0)
    setup.cut()
    assert (await store.record_failure(0, 3, T0 + 1)).failures == 2
    assert store.mode == "local"
    assert (await store.record_success(0)).failures == 0
    assert (await store.reset(OPEN, T0 + 2)).opened_at == T0 + 2
    assert (await store.try_begin_trial("a", 60.0, T0 + 30, 30.0))[0] is False
    claimed, snap = await store.try_begin_trial("a", 60.0, T0 + 62, 30.0)
    assert claimed
    assert (snap.state, snap.trial_token, snap.trial_until) == (HALF_OPEN, "a", T0 + 92)
    ended = await store.end_trial("a", False, T0 + 63)
    assert (ended.state, ended.opened_at, ended.last_failure_at) == (OPEN, T0 + 63, T0 + 63)
    assert (await store.reset(CLOSED, T0 + 64)).state == CLOSED
    # Redis saw none of it
    assert (await setup.redis.load()).failures == 1


@pytest.mark.parametrize("ending", ["success", "failure", "release"])
async def test_a_trial_ended_while_redis_was_cut_off_reaches_it_on_return(
    setup: Setup, ending: str
) -> None:
    """Otherwise Redis would hold the half-open slot for a trial that is over."""
    before = await _half_open_with_trial_a(setup)
    setup.cut()
    if ending == "release":
        local = await setup.store.release_trial("a")
        assert (local.state, local.trial_token) == (HALF_OPEN, None)
    else:
        local = await setup.store.end_trial("a", ending == "success", T0 + 70)
        assert local.state == (CLOSED if ending == "success" else OPEN)
    assert setup.store.mode == "local"
    assert (await setup.redis.load()).trial_token == "a", "Redis has not heard yet"

    await setup.restore()
    shared = await setup.redis.load()
    if ending == "success":
        assert (shared.state, shared.generation) == (CLOSED, before.generation + 1)
    elif ending == "failure":
        assert (shared.state, shared.opened_at, shared.last_failure_at) == (OPEN, T0 + 70, T0 + 70)
    else:
        assert (shared.state, shared.trial_token, shared.trial_until) == (HALF_OPEN, None, None)
    assert setup.store.local.snapshot == shared


async def test_the_loss_is_logged_once_with_its_cause_and_the_breaker(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    await setup.store.load()
    setup.cut()
    with caplog.at_level(logging.WARNING, logger="system.resilience.redis_store"):
        await setup.store.load()
        await setup.store.load()
    [lost] = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(
        r"Redis unreachable \((ConnectionError|TimeoutError)\): breaker 'BGG API' keeps "
        r"this worker's own state until it is back",
        lost,
    ), lost


async def test_closing_the_store_ends_its_reconnection_probe(setup: Setup) -> None:
    setup.cut()
    await setup.store.load()
    probe = setup.store._probe
    assert probe is not None and not probe.done()
    await setup.store.aclose()
    assert probe.done(), "the probe is cancelled and awaited, not left pending"


async def test_put_writes_every_field_back_in_a_new_generation(setup: Setup) -> None:
    """What a worker writes back after an outage: its own state, newer than Redis's."""
    await setup.redis.reset(CLOSED, T0)  # generation 1 in Redis
    opened = Snapshot(state=OPEN, failures=3, opened_at=T0, generation=7, last_failure_at=T0 - 1)
    assert await setup.redis.put(opened) == Snapshot(
        state=OPEN, failures=3, opened_at=T0, generation=8, last_failure_at=T0 - 1
    )
    # the times a closed breaker lacks stay absent, in the next generation after Redis's own
    assert await setup.redis.put(Snapshot(generation=2)) == Snapshot(generation=9)


async def test_it_keeps_probing_until_redis_is_back_and_says_so(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    await setup.store.reset(OPEN, T0)
    setup.cut()
    with caplog.at_level(logging.DEBUG, logger="system.resilience.redis_store"):
        await setup.store.load()
        await eventually(
            lambda: [
                r.getMessage() for r in caplog.records if "still unreachable" in r.getMessage()
            ],
            "a failed reconnection attempt",
        )
        await setup.restore()
    messages = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(
        r"Redis still unreachable \((ConnectionError|TimeoutError)\): breaker 'BGG API' tries "
        r"again in 0.02 s",
        next(m for m in messages if "still unreachable" in m),
    )
    assert messages[-1] == "Redis reachable again: breaker 'BGG API' shares its state (open)"


def test_a_worker_probes_for_redis_every_second_by_default() -> None:
    """README: a worker on its own state looks for Redis again every second."""
    client = redis_client("redis://127.0.0.1:1/0", timeout=TIMEOUT)  # never connects
    store = FailoverBreakerStore(RedisBreakerStore(client, "k", timeout=TIMEOUT), breaker="x")
    assert store.probe_interval == 1.0


async def test_the_store_s_own_timeout_bounds_a_call_on_any_client() -> None:
    """Even on a client without socket timeouts, a Redis that never answers costs TIMEOUT."""
    async with hung_server() as (port, _):
        client = Redis(host="127.0.0.1", port=port)  # redis-py's defaults: no socket timeouts
        store = RedisBreakerStore(client, "k", timeout=0.2)
        call = asyncio.create_task(store.load())
        try:
            # a guard for the test itself, far above the store's 0.2 s
            done, _ = await asyncio.wait({call}, timeout=30)
            assert done, "the call never ended"
            with pytest.raises(TimeoutError):
                call.result()
        finally:
            call.cancel()
            await client.aclose()
