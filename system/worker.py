"""`python -m system worker`: background workers without the API.

Same `Services` as `serve` (job pool, spool replay, recovery, the BGG probe), no FastAPI app
and no alert checks (the API processes own those). SIGTERM or SIGINT starts the drain:
claiming stops, running jobs get `BACKGROUND_DRAIN_SECONDS`, the rest go back to the queue,
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from system.config import Settings
from system.container import build_services
from system.observability.sentry import close_sentry, init_sentry
from system.resilience.breaker import API_STATE

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run the job pool until `stop` is set or a SIGTERM/SIGINT arrives; returns 0."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    services = build_services(settings)
    breaker = services.bgg_breaker
    sentry_started = init_sentry(
        settings, breaker_state=lambda: API_STATE[breaker.last_known_state]
    )
    try:
        await services.start(workers=True, alerts=False)
        logger.info("worker %s running %d job slots", services.pool.owner, services.pool.slots)
        await stop.wait()
        logger.info("worker %s stopping: draining its jobs", services.pool.owner)
    finally:
        await services.aclose()
        if sentry_started:
            close_sentry()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0
