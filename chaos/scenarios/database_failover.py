"""database_failover: PostgreSQL kills the service's connections, then refuses new ones.

What a failover, a restart or an operator does to a running service, done for real to the
throw-away database of the run: `pg_terminate_backend` on every connection the service holds,
over and over while public reads keep coming, then `ALLOW_CONNECTIONS false` (the server
answers every new connection with an error instead of refusing the TCP connection, which the
`database_outage` scenario covers). PostgreSQL only: SQLite has no connections to kill (its
outage, a foreign write lock, is `database_outage`'s).

Promises: no read answers 500 while its connection dies under it (each answers 200, or 503
with `Retry-After`); a read while connections are refused answers 503 `database_unavailable`
with `Retry-After`; once connections are allowed again reads answer 200 without a restart
(the pool dropped the dead connections by itself).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg

from chaos.client import Call
from chaos.context import Context, Skip
from chaos.core import Hypothesis, Scenario, action, equals, probe
from chaos.database import PostgresBackend
from chaos.promises import HARNESS
from chaos.scenarios import common
from chaos.stats import rounded

#: How long connections keep being killed, how often, and by how many concurrent readers.
TERMINATE_FOR = 4.0
TERMINATE_EVERY = 0.25
READERS = 4
PUBLIC_PATH = "/api/public/games"
TERMINATE_SQL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = $1 AND pid <> pg_backend_pid()"
)


def _postgres(ctx: Context) -> PostgresBackend:
    backend = ctx.deployment.backend
    if ctx.target_mode or not isinstance(backend, PostgresBackend):
        raise Skip("needs a PostgreSQL database the harness controls: its postgresql run")
    return backend


async def _admin(backend: PostgresBackend, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(backend.admin_dsn, timeout=5)
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


def _as_promised(call: Call, *, allowed: tuple[int, ...]) -> bool:
    """200 (when allowed), or 503 with Retry-After in the error shape; anything else is not."""
    if call.status == 503:
        return bool(call.headers.get("retry-after")) and call.error_code == ("database_unavailable")
    return call.status in allowed


async def reads_while_backends_die(ctx: Context) -> dict[str, Any]:
    """Public reads from several clients while every service connection is killed, again
    and again; counts each answer that breaks the promise."""
    backend = _postgres(ctx)
    ctx.fault("backends-terminated", True, every_s=TERMINATE_EVERY)
    calls: list[Call] = []
    killed = 0
    stop = time.monotonic() + TERMINATE_FOR

    async def read() -> None:
        while time.monotonic() < stop:
            calls.append(await ctx.service.call("GET", PUBLIC_PATH, time_limit=10))

    async def kill() -> None:
        nonlocal killed
        while time.monotonic() < stop:
            killed += int(await _admin(backend, TERMINATE_SQL, backend.name) or 0)
            await asyncio.sleep(TERMINATE_EVERY)

    try:
        await asyncio.gather(kill(), *(read() for _ in range(READERS)))
    finally:
        ctx.fault("backends-terminated", False)
    broken = [c for c in calls if not _as_promised(c, allowed=(200,))]
    return {
        "reads": len(calls),
        "connections_killed": killed,
        "by_status": dict(Counter(str(c.status or c.error) for c in calls)),
        "broken": len(broken),
        "broken_examples": [c.summary() for c in broken[:3]],
    }


async def reads_while_refused(ctx: Context) -> dict[str, Any]:
    """`ALLOW_CONNECTIONS false`, every connection killed: a read must answer 503."""
    backend = _postgres(ctx)
    await _admin(backend, f'ALTER DATABASE "{backend.name}" ALLOW_CONNECTIONS false')
    ctx.fault("connections-refused", True)
    await _admin(backend, TERMINATE_SQL, backend.name)
    call = await ctx.service.call("GET", PUBLIC_PATH, time_limit=HARNESS.deadline)
    return {
        "status": call.status,
        "code": call.error_code,
        "retry_after": call.headers.get("retry-after"),
        "as_promised": call.status == 503 and _as_promised(call, allowed=()),
    }


async def allow_connections(ctx: Context) -> dict[str, Any]:
    """Let connections in again (also the rollback: it is idempotent)."""
    backend = ctx.deployment.backend
    if not isinstance(backend, PostgresBackend) or ctx.target_mode:
        return {"skipped": True}
    await _admin(backend, f'ALTER DATABASE "{backend.name}" ALLOW_CONNECTIONS true')
    ctx.fault("connections-refused", False)
    return {"allowed": True}


async def reads_recover(ctx: Context) -> dict[str, Any]:
    """Poll a public read until 200, bounded; no restart, no help."""
    _postgres(ctx)
    started = time.monotonic()
    bound = HARNESS.database_connect_timeout + HARNESS.slack + 5
    call = await ctx.service.call("GET", PUBLIC_PATH, time_limit=HARNESS.deadline)
    while call.status != 200 and time.monotonic() - started < bound:
        await asyncio.sleep(0.1)
        call = await ctx.service.call("GET", PUBLIC_PATH, time_limit=HARNESS.deadline)
    return {"status": call.status, "seconds": rounded(time.monotonic() - started, 3)}


SCENARIO = Scenario(
    name="database_failover",
    title="PostgreSQL kills the service's connections, then refuses new ones: 503, never 500",
    fault="pg_terminate_backend on every service connection, repeatedly; ALLOW_CONNECTIONS false",
    description=__doc__ or "",
    tags=("database", "postgresql", "failover"),
    hypothesis=Hypothesis(
        "The service is ready and the catalogue serves",
        (common.READY, common.PUBLIC_API_AROUND),
    ),
    method=(
        probe(
            "reads-while-backends-die",
            reads_while_backends_die,
            equals(0, "broken"),
            promise="no read answers 500 while its connection is killed: 200, or 503 + Retry-After",
        ),
        probe(
            "reads-while-refused",
            reads_while_refused,
            equals(True, "as_promised"),
            promise="a read while PostgreSQL refuses connections answers 503 "
            "database_unavailable with Retry-After",
        ),
        action("allow-connections", allow_connections),
        probe(
            "reads-recover",
            reads_recover,
            equals(200, "status"),
            promise="reads answer 200 again once PostgreSQL accepts connections, no restart",
        ),
    ),
    rollbacks=(action("allow-connections", allow_connections), common.RESTORE),
    per_backend=True,
    requires=frozenset({"database", "postgresql"}),
)
