"""Prometheus metrics: requests, latency, breakers, retries, background tasks and jobs, spool.

Each app owns a `Metrics` with its own registry (tests build many apps). With several
workers, prometheus-client's multiprocess mode is used: `python -m system serve --workers N`
sets `PROMETHEUS_MULTIPROC_DIR` before the workers start, each worker writes its samples
there, and `/metrics` (answered by any worker) aggregates them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from system.db.jobs import JOB_STATUSES, ClaimedJob, JobCounts
from system.db.tasks import TaskRecord
from system.observability.alerts import RequestWindow
from system.tasks.spool import Spool
from system.tasks.thumbnails import TASK_TYPE as THUMBNAIL_TASK
from system.tasks.thumbnails import CdnUnavailable

STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def multiprocess_dir() -> str | None:
    """The multiprocess directory when several workers share the metrics."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _SpoolCollector(Collector):
    """Reads the spool's files at scrape time (every worker shares them)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "failure_spool_pending",
            "Task records waiting in the spool for the database",
            value=self.spool.pending(),
        )
        yield GaugeMetricFamily(
            "failure_spool_quarantined",
            "Spool lines moved aside for an operator: torn, or refused by the database",
            value=self.spool.quarantined(),
        )


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "http_requests", "HTTP requests by route template and status",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.breaker_rejections = Counter(
            "circuit_breaker_rejections", "Calls an open breaker rejected without running",
            ["breaker"], registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "circuit_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open",
            ["breaker"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.breaker_transitions = Counter(
            "circuit_breaker_transitions", "Breaker state changes made by this service",
            ["breaker", "from_state", "to_state"], registry=r,
        )  # fmt: skip
        self.bgg_attempts = Counter(
            "bgg_fetch_attempts", "Requests sent to BGG, first attempts and retries",
            ["kind"], registry=r,
        )  # fmt: skip
        self.bgg_fetches = Counter(
            "bgg_fetches", "BGG fetches (imports) by outcome", ["outcome"], registry=r
        )
        self.thumbnail_retries = Counter(
            "thumbnail_download_retries",
            "Thumbnail download attempts after the first (timeouts and network errors)",
            registry=r,
        )
        self.task_runs = Counter(
            "background_task_runs", "Background task runs by type, outcome and trigger",
            ["task_type", "outcome", "trigger"], registry=r,
        )  # fmt: skip
        self.failures_recorded = Counter(
            "background_task_failures_recorded", "Failure rows recorded (or spooled)",
            ["task_type", "error_type"], registry=r,
        )  # fmt: skip
        self.unresolved = Gauge(
            "background_task_failures_unresolved", "Unresolved failures in the table",
            registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        # The job table's gauges are the same in every process (one query's answer), so the
        # most recent value is kept rather than a sum over `serve --workers N`.
        self.jobs = Gauge(
            "background_jobs", "Background jobs in the job table by task type and status",
            ["task_type", "status"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.job_oldest_queued = Gauge(
            "background_job_oldest_queued_seconds",
            "Seconds the oldest due queued job has waited, by task type (0: none waits)",
            ["task_type"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.job_claims = Counter(
            "background_job_claims", "Jobs claimed by this service's workers",
            ["task_type"], registry=r,
        )  # fmt: skip
        self.job_lease_expiries = Counter(
            "background_job_lease_expiries",
            "Claims that took a job over from a worker whose lease expired",
            ["task_type"], registry=r,
        )  # fmt: skip
        self.job_handbacks = Counter(
            "background_job_handbacks", "Unfinished jobs handed back to the queue, by reason",
            ["task_type", "reason"], registry=r,
        )  # fmt: skip
        #: Task types the job gauges have shown: one that vanishes from the table reads 0.
        self._job_types: set[str] = set()
        self._spool: _SpoolCollector | None = None

    def count_thumbnail_retries(self, record: TaskRecord) -> None:
        """Count the retries one recorded thumbnail run made; other runs are ignored.

        Called with every run recorded (the recorder's `on_record`). `attempts` counts the
        retry loop's attempts; one the open breaker rejected was not tried (as for BGG's
        `bgg_fetch_attempts_total`), and a rejection always ends the loop, so it is the last.
        """
        if record.task_type != THUMBNAIL_TASK:
            return
        tried = record.attempts - (1 if record.error_type == CdnUnavailable.error_type else 0)
        if tried > 1:
            self.thumbnail_retries.inc(tried - 1)

    def observe_jobs(self, counts: JobCounts) -> None:
        """Set the job gauges from one `count_jobs` answer.

        Every status of every task type seen so far gets a value, 0 when it has no row now:
        a series that simply stopped being set would keep showing its last count.
        """
        self._job_types.update(task_type for task_type, _status in counts.counts)
        self._job_types.update(counts.oldest_due_seconds)
        for task_type in self._job_types:
            for status in JOB_STATUSES:
                self.jobs.labels(task_type, status).set(counts.counts.get((task_type, status), 0))
            self.job_oldest_queued.labels(task_type).set(
                counts.oldest_due_seconds.get(task_type, 0.0)
            )

    def count_claim(self, job: ClaimedJob) -> None:
        """Count one claim, and a lease take-over when it was one (the pool's `on_claim`)."""
        self.job_claims.labels(job.task_type).inc()
        if job.taken_over:
            self.job_lease_expiries.labels(job.task_type).inc()

    def count_handback(self, job: ClaimedJob, reason: str) -> None:
        """Count one job handed back unfinished (the pool's `on_hand_back`)."""
        self.job_handbacks.labels(job.task_type, reason).inc()

    def watch_spool(self, spool: Spool) -> None:
        """Report the spool's length and its quarantine's at every scrape."""
        self._spool = _SpoolCollector(spool)
        if multiprocess_dir() is None:
            self.registry.register(self._spool)

    def render(self) -> tuple[bytes, str]:
        """The text exposition (aggregated over workers in multiprocess mode)."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        if self._spool is not None:
            registry.register(self._spool)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every request by its route template (never the raw path, so ids
    do not explode the label set). Unmatched paths are reported as `unmatched`.

    The alert `window` sees API traffic only: not health checks, scrapes, nor the route
    templates in `unjudged` (the docs pages)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        window: RequestWindow | None = None,
        unjudged: Collection[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.window = window
        self.unjudged = frozenset(unjudged)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", "GET"))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
            if (
                self.window is not None
                and not template.startswith(("/health", "/metrics"))
                and template not in self.unjudged
            ):
                # The open breaker's 503 is the designed answer, not an error.
                designed = bool(scope.get("state", {}).get("breaker_rejection"))
                self.window.observe(200 if designed else status)
