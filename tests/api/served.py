"""The app behind a real uvicorn server on a loopback socket, in the test's own event loop.

`httpx.ASGITransport` waits for the whole ASGI call, so it cannot see what a real client sees:
an answer that leaves the server before the request's work is done. These tests need sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import make_url

from chaos.fakes.server import bind_socket, uvicorn_config
from system.db.database import Database
from tests.support.waiting import eventually


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (its lifespan included) until the block ends; yields its base URL."""
    sock = bind_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        # Done (crashed) counts too: its exception, not a timeout, is what to see.
        await eventually(lambda: server.started or task.done(), "uvicorn to start", within=30)
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def raw_request(port: int, method: str, path: str, headers: dict[str, str]) -> socket.socket:
    """Send one HTTP/1.1 request on a fresh socket and return the socket unread."""
    sock = socket.create_connection(("127.0.0.1", port))
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Length: 0"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


async def read_response(sock: socket.socket) -> bytes:
    """One whole response (head, and a body of Content-Length) from a raw socket; what came
    before the server closed it, if it did."""
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(20):
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                lengths = [
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ]
                if len(body) >= sum(lengths):
                    return data
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                return data
            data += chunk


async def add_row(database: Database, row: Any) -> int:
    """Insert one ORM row through the service's own database handle; its id."""
    async with database.session() as session:
        session.add(row)
        await session.flush()
        row_id: int = row.id
    return row_id


async def refuse_commits(dsn: str, table: str, events: str) -> None:
    """Make every COMMIT after `events` (e.g. "INSERT OR UPDATE") on `table` fail: a deferred
    constraint trigger that raises. The statements themselves succeed; only COMMIT fails."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            f"""
            CREATE OR REPLACE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$;
            CREATE CONSTRAINT TRIGGER refuse_commit AFTER {events}
                ON {table} DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION refuse_commit();
            """
        )
    finally:
        await admin.close()


def asyncpg_dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy PostgreSQL URL (for connections beside the service's)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL the app's engine sends while the block runs."""
    seen: list[str] = []
    engine = app.state.database.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
