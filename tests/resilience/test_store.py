"""The breaker's state machine: the pure steps, and Redis's Lua script agreeing with them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from system.resilience.redis_store import RedisBreakerStore, breaker_key, redis_client
from system.resilience.store import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    MemoryBreakerStore,
    Snapshot,
    step_begin_trial,
    step_end_trial,
    step_failure,
    step_release_trial,
    step_reset,
    step_success,
)

T0 = 1_800_000_000.0


def test_opens_after_exactly_fail_max_failures() -> None:
    snap = Snapshot()
    for n in range(1, 5):
        snap = step_failure(snap, 0, 5, T0 + n)
        assert (snap.state, snap.failures) == (CLOSED, n)
    snap = step_failure(snap, 0, 5, T0 + 5)
    assert (snap.state, snap.opened_at, snap.generation) == (OPEN, T0 + 5, 1)


def test_success_resets_the_count_and_late_answers_are_ignored() -> None:
    snap = step_failure(step_failure(Snapshot(), 0, 5, T0), 0, 5, T0)
    assert step_success(snap, 0).failures == 0
    opened = step_failure(Snapshot(failures=4), 0, 5, T0)
    # A failure or success admitted in generation 0 arrives after the breaker opened.
    assert step_failure(opened, 0, 5, T0 + 1) == opened
    assert step_success(opened, 0) == opened


def test_half_open_admits_one_trial_and_only_it_decides() -> None:
    opened = Snapshot(state=OPEN, failures=5, opened_at=T0, generation=1)
    assert step_begin_trial(opened, "a", 60, T0 + 59, 30) == (False, opened)
    claimed, half = step_begin_trial(opened, "a", 60, T0 + 60, 30)
    assert claimed and half.state == HALF_OPEN and half.trial_token == "a"
    assert step_begin_trial(half, "b", 60, T0 + 61, 30) == (False, half)
    assert step_end_trial(half, "b", True, T0 + 62) == half  # not the trial holder
    closed = step_end_trial(half, "a", True, T0 + 62)
    assert (closed.state, closed.failures, closed.generation) == (CLOSED, 0, 3)
    reopened = step_end_trial(half, "a", False, T0 + 62)
    assert (reopened.state, reopened.opened_at) == (OPEN, T0 + 62)
    # A cancelled trial frees the slot; an abandoned one expires after its TTL.
    freed = step_release_trial(half, "a")
    assert step_begin_trial(freed, "c", 60, T0 + 62, 30)[0]
    assert step_begin_trial(half, "d", 60, T0 + 60 + 30, 30)[0]


def test_the_trial_ends_into_a_fresh_state_that_keeps_only_what_it_should() -> None:
    half = Snapshot(
        state=HALF_OPEN,
        failures=5,
        opened_at=T0,
        generation=2,
        trial_token="a",
        trial_until=T0 + 90,
        last_failure_at=T0 - 3,
    )
    # A success forgets the outage but not when the last failure was (the status shows it).
    assert step_end_trial(half, "a", True, T0 + 62) == Snapshot(
        state=CLOSED, generation=3, last_failure_at=T0 - 3
    )
    # A failure opens anew from now, and the trial slot is gone with the old state.
    assert step_end_trial(half, "a", False, T0 + 62) == Snapshot(
        state=OPEN, failures=5, opened_at=T0 + 62, generation=3, last_failure_at=T0 + 62
    )


def test_a_reset_forces_the_state_in_a_new_generation() -> None:
    half = Snapshot(
        state=HALF_OPEN,
        failures=5,
        opened_at=T0,
        generation=4,
        trial_token="a",
        trial_until=T0 + 30,
        last_failure_at=T0 - 1,
    )
    assert step_reset(half, OPEN, T0 + 5) == Snapshot(
        state=OPEN, opened_at=T0 + 5, generation=5, last_failure_at=T0 - 1
    )
    assert step_reset(half, CLOSED, T0 + 5) == Snapshot(
        state=CLOSED, generation=5, last_failure_at=T0 - 1
    )
    assert step_reset(half, HALF_OPEN, T0 + 5) == Snapshot(
        state=HALF_OPEN, generation=5, last_failure_at=T0 - 1
    )
    # The API's spelling is not the store's: refused, not stored as a fourth state.
    with pytest.raises(ValueError, match="unknown breaker state 'half_open'"):
        step_reset(half, "half_open", T0)


# Operations as data, so the same sequence runs against memory and Redis. A generation of
# None stands for the store's current one: a random number would rarely match it, and only a
# matching generation counts a failure or a success.
GENERATION = st.one_of(st.none(), st.integers(0, 3))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("failure"), GENERATION),
        st.tuples(st.just("success"), GENERATION),
        st.tuples(st.just("reset"), st.sampled_from([CLOSED, OPEN, HALF_OPEN])),
        st.tuples(st.just("begin"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("end_ok"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("end_fail"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("release"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("wait"), st.integers(1, 40)),
    ),
    max_size=30,
)


async def _apply(
    store: MemoryBreakerStore | RedisBreakerStore, ops: list[tuple[str, object]]
) -> list[Snapshot]:
    now = T0
    seen = []
    for op, arg in ops:
        generation = (await store.load()).generation if arg is None else arg
        if op == "wait":
            now += float(arg)  # type: ignore[arg-type]
            seen.append(await store.load())
        elif op == "failure":
            seen.append(await store.record_failure(int(generation), 3, now))  # type: ignore[call-overload]
        elif op == "success":
            seen.append(await store.record_success(int(generation)))  # type: ignore[call-overload]
        elif op == "reset":
            seen.append(await store.reset(str(arg), now))
        elif op == "begin":
            seen.append((await store.try_begin_trial(str(arg), 20, now, 10))[1])
        elif op in ("end_ok", "end_fail"):
            seen.append(await store.end_trial(str(arg), op == "end_ok", now))
        else:
            seen.append(await store.release_trial(str(arg)))
    return seen


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url, timeout=1.0)
    yield client
    await client.aclose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
# Every step from every state, whatever the random examples happen to be.
@example(
    ops=[
        ("failure", None),
        ("success", None),
        ("failure", None),
        ("failure", 9),
        ("failure", None),
        ("failure", None),
        ("begin", "a"),
        ("wait", 20),
        ("begin", "a"),
        ("begin", "b"),
        ("release", "b"),
        ("release", "a"),
        ("begin", "b"),
        ("end_fail", "a"),
        ("end_fail", "b"),
        ("wait", 20),
        ("begin", "a"),
        ("end_ok", "a"),
        ("failure", None),
        ("reset", OPEN),
        ("reset", HALF_OPEN),
        ("begin", "a"),
        ("end_ok", "a"),
        ("reset", CLOSED),
    ]
)
async def test_redis_script_agrees_with_the_python_steps(
    redis: Redis, redis_namespace: str, ops: list[tuple[str, object]]
) -> None:
    key = breaker_key(redis_namespace, "parity")
    await redis.delete(key)
    try:
        expected = await _apply(MemoryBreakerStore(), ops)
        actual = await _apply(RedisBreakerStore(redis, key, timeout=1.0), ops)
    finally:
        await redis.delete(key)
    assert actual == expected


def test_breaker_keys_are_namespaced() -> None:
    assert breaker_key("bgg-reliability", "BGG API") == "bgg-reliability:breaker:bgg-api"
    assert breaker_key("x", "Image CDN") == "x:breaker:image-cdn"
    # whatever surrounds the name, the slug neither starts nor ends with a dash
    assert breaker_key("x", "  (Image CDN)! ") == "x:breaker:image-cdn"


def test_the_client_fails_fast() -> None:
    """REDIS_TIMEOUT bounds connecting and every read, a failed command is never retried (it
    may have run), and no health check adds a round trip: the breaker falls back instead."""
    client = redis_client("redis://127.0.0.1:1/0", timeout=0.25)  # never connects
    options = client.connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.25, 0.25)
    assert options["health_check_interval"] == 0
    assert options["retry"].get_retries() == 0
