"""The job table's gauges, refreshed from one `count_jobs` query every `JOB_METRICS_SECONDS`.

The API processes run this (`Services.start(alerts=True)`); worker-only processes do not, since
they serve no `/metrics`. Every process that refreshes reads the same table, and the gauges
keep the most recent value in multiprocess mode, so `serve --workers N` does not multiply
the counts. While the database cannot be read the gauges keep their last values (the
`/health/ready` check and the database's own alerts report that outage).
"""

from __future__ import annotations

import logging

from system.db import jobs
from system.db.database import Database
from system.db.errors import describe
from system.db.jobs import JobCounts
from system.observability.metrics import Metrics
from system.periodic import Periodic

logger = logging.getLogger(__name__)


class JobGauges:
    """Sets `background_jobs` and `background_job_oldest_queued_seconds` periodically."""

    def __init__(self, database: Database, metrics: Metrics, interval: float) -> None:
        self.database = database
        self.metrics = metrics
        self._loop = Periodic("job metrics", interval, self.refresh)
        self._error_logged = False

    async def refresh(self) -> JobCounts | None:
        """Count the jobs once and set the gauges; None when the database cannot be read."""
        try:
            async with self.database.session() as session:
                counts = await jobs.count_jobs(session)
        except Exception as exc:
            # Once per outage: the loop runs every few seconds.
            if not self._error_logged:
                logger.warning("cannot count background jobs for metrics: %s", describe(exc))
                self._error_logged = True
            return None
        self._error_logged = False
        self.metrics.observe_jobs(counts)
        return counts

    def start(self) -> None:
        """Start refreshing every `JOB_METRICS_SECONDS`."""
        self._loop.start()

    async def aclose(self) -> None:
        """Stop refreshing."""
        await self._loop.aclose()
