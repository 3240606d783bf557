"""Breaker state shared through Redis, with this worker's own state as the fallback.

Compared with pybreaker's `CircuitRedisStorage`: every step is one Lua script (atomic across
workers: exactly `fail_max` failures open the breaker, exactly one worker gets the half-open
trial), the client is `redis.asyncio` with short timeouts and no retries (nothing blocks the
event loop), nothing is asked of Redis at start-up, and when Redis stops answering the worker
carries on with the last state it knew (it does not pretend the breaker is closed), logs the
loss once, and resynchronises in the background when Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from system.resilience.store import CLOSED, MemoryBreakerStore, Snapshot

logger = logging.getLogger(__name__)

T = TypeVar("T")

# One script for every step so the state machine lives in one place on the Redis side; it
# mirrors the pure `step_*` functions in store.py (tests run both against the same cases).
_SCRIPT = """
local key = KEYS[1]
local op = ARGV[1]
local v = redis.call('HMGET', key, 'state', 'failures', 'opened_at', 'generation',
                     'trial_token', 'trial_until', 'last_failure_at')
local s = {
  state = v[1] or 'closed', failures = tonumber(v[2]) or 0, opened_at = v[3] or '',
  generation = tonumber(v[4]) or 0, trial_token = v[5] or '', trial_until = v[6] or '',
  last_failure_at = v[7] or ''
}
local claimed = 0
local changed = false
if op == 'failure' then
  local now = ARGV[4]
  if s.state == 'closed' and s.generation == tonumber(ARGV[2]) then
    s.failures = s.failures + 1
    s.last_failure_at = now
    if s.failures >= tonumber(ARGV[3]) then
      s.state = 'open'; s.opened_at = now; s.generation = s.generation + 1
      s.trial_token = ''; s.trial_until = ''
    end
    changed = true
  end
elseif op == 'success' then
  if s.state == 'closed' and s.generation == tonumber(ARGV[2]) and s.failures > 0 then
    s.failures = 0; changed = true
  end
elseif op == 'begin_trial' then
  local now = tonumber(ARGV[4])
  if s.state == 'open' then
    local opened = tonumber(s.opened_at)
    if opened == nil or now >= opened + tonumber(ARGV[3]) then
      s.state = 'half-open'; s.generation = s.generation + 1
      s.trial_token = ARGV[2]; s.trial_until = ARGV[5]; claimed = 1; changed = true
    end
  elseif s.state == 'half-open' then
    local busy_until = tonumber(s.trial_until)
    if s.trial_token == '' or busy_until == nil or now >= busy_until then
      s.trial_token = ARGV[2]; s.trial_until = ARGV[5]; claimed = 1; changed = true
    end
  end
elseif op == 'end_trial' then
  if s.state == 'half-open' and s.trial_token == ARGV[2] then
    if ARGV[3] == '1' then
      s.state = 'closed'; s.failures = 0; s.opened_at = ''
    else
      s.state = 'open'; s.opened_at = ARGV[4]; s.last_failure_at = ARGV[4]
    end
    s.generation = s.generation + 1; s.trial_token = ''; s.trial_until = ''; changed = true
  end
elseif op == 'release_trial' then
  if s.state == 'half-open' and s.trial_token == ARGV[2] then
    s.trial_token = ''; s.trial_until = ''; changed = true
  end
elseif op == 'reset' then
  s.state = ARGV[2]; s.failures = 0; s.generation = s.generation + 1
  s.trial_token = ''; s.trial_until = ''
  if ARGV[2] == 'open' then s.opened_at = ARGV[3] else s.opened_at = '' end
  changed = true
elseif op == 'put' then
  s.state = ARGV[2]; s.failures = tonumber(ARGV[3]); s.opened_at = ARGV[4]
  s.generation = math.max(s.generation, tonumber(ARGV[5])) + 1
  s.trial_token = ''; s.trial_until = ''; s.last_failure_at = ARGV[6]
  changed = true
end
if changed then
  redis.call('HSET', key, 'state', s.state, 'failures', s.failures, 'opened_at', s.opened_at,
             'generation', s.generation, 'trial_token', s.trial_token,
             'trial_until', s.trial_until, 'last_failure_at', s.last_failure_at)
  redis.call('EXPIRE', key, 604800)
end
return {claimed, s.state, tostring(s.failures), s.opened_at, tostring(s.generation),
        s.trial_token, s.trial_until, s.last_failure_at}
"""

#: Errors that mean "Redis is not answering", as opposed to bugs.
REDIS_DOWN = (RedisError, OSError, TimeoutError)


def redis_client(url: str, *, timeout: float) -> Redis:
    """An asyncio Redis client that fails fast: short timeouts, no retries, lazy connect."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def breaker_key(namespace: str, breaker: str) -> str:
    """The Redis key of one breaker, e.g. `bgg-reliability:breaker:bgg-api`."""
    slug = re.sub(r"[^a-z0-9]+", "-", breaker.lower()).strip("-")
    return f"{namespace}:breaker:{slug}"


def _opt(value: str) -> float | None:
    return float(value) if value else None


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(value)


class RedisBreakerStore:
    """The `BreakerStore` steps as one Lua script on Redis. Raises when Redis is down."""

    def __init__(self, client: Redis, key: str, *, timeout: float) -> None:
        self.client = client
        self.key = key
        self.timeout = timeout
        self._script = client.register_script(_SCRIPT)

    async def _run(self, *args: str) -> tuple[bool, Snapshot]:
        async with asyncio.timeout(self.timeout):
            raw: list[Any] = await self._script(keys=[self.key], args=list(args))
        fields = [x.decode() if isinstance(x, bytes) else str(x) for x in raw[1:]]
        state, failures, opened_at, generation, token, trial_until, last_failure = fields
        return bool(int(raw[0])), Snapshot(
            state=state,
            failures=int(failures),
            opened_at=_opt(opened_at),
            generation=int(generation),
            trial_token=token or None,
            trial_until=_opt(trial_until),
            last_failure_at=_opt(last_failure),
        )

    async def load(self) -> Snapshot:
        return (await self._run("load"))[1]

    async def record_failure(self, generation: int, fail_max: int, now: float) -> Snapshot:
        return (await self._run("failure", str(generation), str(fail_max), repr(now)))[1]

    async def record_success(self, generation: int) -> Snapshot:
        return (await self._run("success", str(generation)))[1]

    async def try_begin_trial(
        self, token: str, reset_timeout: float, now: float, trial_ttl: float
    ) -> tuple[bool, Snapshot]:
        return await self._run(
            "begin_trial", token, repr(reset_timeout), repr(now), repr(now + trial_ttl)
        )

    async def end_trial(self, token: str, success: bool, now: float) -> Snapshot:
        return (await self._run("end_trial", token, "1" if success else "0", repr(now)))[1]

    async def release_trial(self, token: str) -> Snapshot:
        return (await self._run("release_trial", token))[1]

    async def reset(self, state: str, now: float) -> Snapshot:
        return (await self._run("reset", state, repr(now)))[1]

    async def drop_connections(self) -> None:
        """Close every pooled connection: after an outage they may be dead (cut while idle),
        and a command on a dead one fails after it may have been sent, so it cannot be
        retried safely. New connections are opened on the next command."""
        await self.client.connection_pool.disconnect()

    async def put(self, snap: Snapshot) -> Snapshot:
        """Write a worker's state back after an outage (a new generation begins)."""
        return (
            await self._run(
                "put",
                snap.state,
                str(snap.failures),
                _fmt(snap.opened_at),
                str(snap.generation),
                _fmt(snap.last_failure_at),
            )
        )[1]


class FailoverBreakerStore:
    """Redis while it answers; this worker's last known state while it does not.

    On reconnection the more cautious state wins: if this worker saw the breaker open while
    Redis still says closed, the worker's state is written back; otherwise the worker adopts
    what Redis says (other workers may have moved on meanwhile).
    """

    def __init__(
        self, shared: RedisBreakerStore, *, breaker: str, probe_interval: float = 1.0
    ) -> None:
        self.shared = shared
        self.local = MemoryBreakerStore()
        self.breaker = breaker
        self.probe_interval = probe_interval
        self.connected = True
        self._probe: asyncio.Task[None] | None = None
        # Trial endings Redis did not take (it went away mid-trial): replayed on reconnection,
        # or the shared state would wait for a trial that already ended.
        self._unsent_trial_ends: list[tuple[str, bool | None, float]] = []

    @property
    def mode(self) -> str:
        """`redis` while the state is shared, `local` while this worker is on its own."""
        return "redis" if self.connected else "local"

    async def _call(
        self,
        shared: Callable[[], Awaitable[T]],
        local: Callable[[], Awaitable[T]],
        snapshot_of: Callable[[T], Snapshot],
    ) -> T:
        if self.connected:
            try:
                result = await shared()
            except REDIS_DOWN as exc:
                self._lost(exc)
            else:
                self.local.adopt(snapshot_of(result))
                return result
        return await local()

    def _lost(self, exc: BaseException) -> None:
        # Every call in flight when Redis went away ends up here: one warning per outage.
        if not self.connected:
            return
        self.connected = False
        logger.warning(
            "Redis unreachable (%s): breaker %r keeps this worker's own state until it is back",
            type(exc).__name__,
            self.breaker,
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.shared.drop_connections()
                while self._unsent_trial_ends:
                    token, success, now = self._unsent_trial_ends[0]
                    if success is None:
                        await self.shared.release_trial(token)
                    else:
                        await self.shared.end_trial(token, success, now)
                    self._unsent_trial_ends.pop(0)
                remote = await self.shared.load()
                local = self.local.snapshot
                if local.state != CLOSED and remote.state == CLOSED:
                    remote = await self.shared.put(local)
            except REDIS_DOWN as exc:
                logger.debug(
                    "Redis still unreachable (%s): breaker %r tries again in %g s",
                    type(exc).__name__,
                    self.breaker,
                    self.probe_interval,
                )
                continue
            self.local.adopt(remote)
            self.connected = True
            logger.info(
                "Redis reachable again: breaker %r shares its state (%s)",
                self.breaker,
                remote.state,
            )
            return

    async def load(self) -> Snapshot:
        return await self._call(self.shared.load, self.local.load, lambda s: s)

    async def record_failure(self, generation: int, fail_max: int, now: float) -> Snapshot:
        return await self._call(
            lambda: self.shared.record_failure(generation, fail_max, now),
            lambda: self.local.record_failure(generation, fail_max, now),
            lambda s: s,
        )

    async def record_success(self, generation: int) -> Snapshot:
        return await self._call(
            lambda: self.shared.record_success(generation),
            lambda: self.local.record_success(generation),
            lambda s: s,
        )

    async def try_begin_trial(
        self, token: str, reset_timeout: float, now: float, trial_ttl: float
    ) -> tuple[bool, Snapshot]:
        return await self._call(
            lambda: self.shared.try_begin_trial(token, reset_timeout, now, trial_ttl),
            lambda: self.local.try_begin_trial(token, reset_timeout, now, trial_ttl),
            lambda r: r[1],
        )

    async def end_trial(self, token: str, success: bool, now: float) -> Snapshot:
        async def local() -> Snapshot:
            self._unsent_trial_ends.append((token, success, now))
            return await self.local.end_trial(token, success, now)

        return await self._call(
            lambda: self.shared.end_trial(token, success, now), local, lambda s: s
        )

    async def release_trial(self, token: str) -> Snapshot:
        async def local() -> Snapshot:
            self._unsent_trial_ends.append((token, None, 0.0))
            return await self.local.release_trial(token)

        return await self._call(lambda: self.shared.release_trial(token), local, lambda s: s)

    async def reset(self, state: str, now: float) -> Snapshot:
        return await self._call(
            lambda: self.shared.reset(state, now),
            lambda: self.local.reset(state, now),
            lambda s: s,
        )

    async def aclose(self) -> None:
        """Stop the reconnection probe."""
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
