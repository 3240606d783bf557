"""FastAPI dependencies: everything a route needs comes from the app, never from a global.

Each is `async def` though none awaits: FastAPI runs a plain `def` dependency in its thread
pool, a thread hop per dependency per request for reading an attribute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from system.container import Services
from system.db.database import Database


async def get_services(request: Request) -> Services:
    """Everything the lifespan built."""
    services: Services = request.app.state.services
    return services


async def get_database(request: Request) -> Database:
    """The app's database handle (built by the lifespan)."""
    services: Services = request.app.state.services
    return services.database


async def get_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """A session per request; the one place a route's writes commit (or roll back on error).

    Used with `scope="function"` (`SessionDep`): the commit runs when the route returns and
    before the answer is sent, so a 2xx means committed, and a commit that fails
    (`CommitFailed`, from `Database.session`) is the answer: 503, or 409 for a conflict.
    With FastAPI's default scope it would run after the answer is sent.
    """
    async with database.session() as session:
        yield session


DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ServicesDep = Annotated[Services, Depends(get_services)]
