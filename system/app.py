"""The app factory and its lifespan: everything heavy is built here, nothing at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from system import __version__
from system.api import admin, health, public
from system.api.errors import install_error_handlers
from system.config import Settings
from system.db.database import Database
from system.tokens import AdminTokens

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for `settings` (read from the environment when omitted).

    Tests build isolated apps by passing their own settings; uvicorn calls this with none.
    """
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(
            settings.database_url, connect_timeout=settings.database_connect_timeout
        )
        app.state.database = database
        if settings.auto_migrate:
            await database.auto_migrate()
        try:
            yield
        finally:
            await database.close()

    app = FastAPI(
        title="bgg-reliability",
        version=__version__,
        summary="A board-game catalogue that imports from BoardGameGeek and survives its outages.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.admin_tokens = AdminTokens(settings.admin_tokens)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(public.router)
    app.include_router(admin.router)
    return app
