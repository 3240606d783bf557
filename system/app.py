"""The app factory and its lifespan: everything heavy is built here, nothing at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from system import __version__
from system.api import admin, failures, health, jobs, monitoring, observability, public
from system.api.caching import RepresentationCache
from system.api.docs import PAGE_ROUTES, install_docs
from system.api.errors import UnexpectedErrors, install_error_handlers
from system.config import Settings
from system.container import Overrides, build_services
from system.observability.alerts import RequestWindow
from system.observability.metrics import Metrics, MetricsMiddleware
from system.observability.sentry import RateLimiter, close_sentry, init_sentry
from system.resilience.breaker import API_STATE
from system.supervision import follow_supervisor
from system.tokens import AdminTokens

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, overrides: Overrides | None = None) -> FastAPI:
    """Build the API for `settings` (read from the environment when omitted).

    Tests build isolated apps by passing their own settings (and `overrides` for the
    network, the sleep and DNS); uvicorn calls this with neither.
    """
    settings = settings if settings is not None else Settings()
    metrics = Metrics()
    window = RequestWindow(settings.alert_error_rate_window_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follow_supervisor()
        services = build_services(settings, overrides, metrics=metrics, window=window)
        app.state.services = services
        app.state.database = services.database
        breaker = services.bgg_breaker
        sentry_started = init_sentry(
            settings,
            breaker_state=lambda: API_STATE[breaker.last_known_state],
            transport=overrides.sentry_transport if overrides else None,
        )
        await services.start(workers=settings.background_workers_in_process)
        try:
            yield
        finally:
            await services.aclose()
            if sentry_started:
                close_sentry()

    app = FastAPI(
        title="bgg-reliability",
        version=__version__,
        summary="A board-game catalogue that imports from BoardGameGeek and survives its outages.",
        lifespan=lifespan,
        # FastAPI's own pages load their assets from a CDN; install_docs serves local ones.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.read_cache = RepresentationCache(max_entries=settings.read_cache_entries)
    app.state.rejection_reports = RateLimiter(60.0)
    app.state.admin_tokens = AdminTokens(settings.admin_tokens)
    # Added first, innermost: their fast answers are counted and guarded as any other.
    app.add_middleware(admin.ImportWhileOpen)
    app.add_middleware(public.CachedReads)
    app.add_middleware(UnexpectedErrors)  # inside the metrics, which count its 500s
    app.add_middleware(MetricsMiddleware, metrics=metrics, window=window, unjudged=PAGE_ROUTES)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(public.router)
    app.include_router(admin.router)
    app.include_router(monitoring.router)
    app.include_router(failures.router)
    app.include_router(jobs.router)
    app.include_router(observability.router)
    install_docs(app)
    return app
