"""The composition root: everything the app builds at start-up and closes at shutdown.

`build_services(settings)` is called by the lifespan; tests call it too, with `Overrides`
for the Sentry transport, the sleep and the DNS resolver, so no test patches a module global.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis
from sentry_sdk.transport import Transport

from system.bgg.client import BggClient, build_http_client
from system.bgg.errors import BggUnavailable
from system.bgg.parse_process import ProcessParser
from system.config import Settings
from system.db.database import Database
from system.db.tasks import TaskRecord
from system.importer import GameImporter
from system.observability.alerts import Alerter, RequestWindow
from system.observability.job_metrics import JobGauges
from system.observability.metrics import STATE_VALUES, Metrics
from system.periodic import Periodic
from system.resilience.breaker import AsyncCircuitBreaker, Transition
from system.resilience.budget import RetryBudget
from system.resilience.probe import BreakerProbe
from system.resilience.redis_store import (
    FailoverBreakerStore,
    RedisBreakerStore,
    breaker_key,
    redis_client,
)
from system.resilience.retry import RetryPolicy, Sleep
from system.resilience.store import CLOSED, BreakerStore, MemoryBreakerStore
from system.tasks.imports import TASK_TYPE as IMPORT_TASK
from system.tasks.imports import import_handler
from system.tasks.pool import JobPool
from system.tasks.recording import TaskRecorder
from system.tasks.recovery import Recovery, job_retrier, thumbnail_retrier
from system.tasks.runner import TaskRunner
from system.tasks.spool import Spool
from system.tasks.thumbnails import TASK_TYPE as THUMBNAIL_TASK
from system.tasks.thumbnails import (
    Resolver,
    ThumbnailDownloader,
    resolve_host,
    thumbnail_handler,
)

logger = logging.getLogger(__name__)

#: How often old finished jobs are deleted (seconds).
JOB_RETENTION_INTERVAL = 3600.0

BGG_BREAKER = "BGG API"
CDN_BREAKER = "Image CDN"


@dataclass
class Overrides:
    """Test hooks: what a test injects instead of the real network, clock, DNS or Sentry."""

    sleep: Sleep | None = None
    resolver: Resolver | None = None
    sentry_transport: Transport | None = None


@dataclass
class Services:
    """The app's long-lived objects."""

    settings: Settings
    database: Database
    breakers: dict[str, AsyncCircuitBreaker]
    bgg: BggClient
    downloader: ThumbnailDownloader
    runner: TaskRunner
    recorder: TaskRecorder
    pool: JobPool
    job_retention: Periodic
    importer: GameImporter
    recovery: Recovery
    import_recovery: Recovery
    metrics: Metrics
    alerter: Alerter
    bgg_http: httpx.AsyncClient
    cdn_http: httpx.AsyncClient
    redis: Redis | None = None
    stores: list[FailoverBreakerStore] = field(default_factory=list)
    parse_processes: ProcessParser | None = None
    #: Closes the BGG breaker after an outage without user traffic (`resilience/probe.py`).
    bgg_probe: BreakerProbe | None = None
    #: The job table's gauges, refreshed by the API processes (`observability/job_metrics.py`).
    job_gauges: JobGauges | None = None

    @property
    def bgg_breaker(self) -> AsyncCircuitBreaker:
        """The breaker in front of BGG."""
        return self.breakers[BGG_BREAKER]

    async def start(self, *, workers: bool, alerts: bool = True) -> None:
        """Migrate (with `AUTO_MIGRATE`), replay the spool, and start the background loops:
        the job pool only with `workers`, the alert checks and the job gauges only with
        `alerts` (the API's)."""
        if self.settings.auto_migrate:
            await self.database.auto_migrate()
        if self.database.schema_ready:
            # Records spooled while the database was down, by this or an earlier process.
            await self.recorder.replay()
        self.recorder.start()
        if workers:
            # After the replay: a spooled record may finish a job this pool would re-run.
            self.pool.start()
            self.job_retention.start()
        self.recovery.start()
        self.import_recovery.start()
        if self.bgg_probe is not None:
            self.bgg_probe.start()
        if alerts:
            self.alerter.start()
            if self.job_gauges is not None:
                self.job_gauges.start()

    def recovery_for(self, task_type: str) -> Recovery:
        """The recovery that re-runs failed tasks of `task_type` (thumbnails by default)."""
        if task_type == self.import_recovery.task_type:
            return self.import_recovery
        return self.recovery

    async def settle(self) -> None:
        """Wait until no background job or task is due or running in this process."""
        while True:
            if self.pool.started:
                await self.pool.join()
            await self.runner.join()
            if not self.runner.pending and not self.pool.running:
                return

    async def aclose(self) -> None:
        """Drain background tasks, then close clients, Redis and the database."""
        await self.alerter.aclose()
        if self.job_gauges is not None:
            await self.job_gauges.aclose()
        if self.bgg_probe is not None:
            await self.bgg_probe.aclose()
        await self.recovery.aclose()
        await self.import_recovery.aclose()
        await self.recorder.aclose()
        await self.job_retention.aclose()
        await self.pool.drain(self.settings.background_drain_seconds)
        await self.runner.drain(self.settings.background_drain_seconds)
        for store in self.stores:
            await store.aclose()
        await self.bgg_http.aclose()
        await self.cdn_http.aclose()
        if self.parse_processes is not None:
            await self.parse_processes.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.database.close()


def bgg_retry_policy(settings: Settings) -> RetryPolicy:
    """The import retry policy: full-jitter exponential waits under a deadline."""
    return RetryPolicy(
        attempts=settings.bgg_retry_attempts,
        initial_wait=settings.bgg_retry_initial_wait,
        max_wait=settings.bgg_retry_max_wait,
        deadline=settings.bgg_deadline_seconds,
    )


def thumbnail_retry_policy(settings: Settings) -> RetryPolicy:
    """The spec's thumbnail policy: plain exponential waits of 2-10 s, 3 attempts."""
    return RetryPolicy(
        attempts=settings.thumbnail_retry_attempts,
        initial_wait=1.0,
        min_wait=settings.thumbnail_retry_min_wait,
        max_wait=settings.thumbnail_retry_max_wait,
        jitter=False,
    )


def build_services(
    settings: Settings,
    overrides: Overrides | None = None,
    *,
    metrics: Metrics | None = None,
    window: RequestWindow | None = None,
) -> Services:
    """Build every long-lived object for `settings` (no I/O happens here)."""
    overrides = overrides or Overrides()
    metrics = metrics or Metrics()
    window = window or RequestWindow(settings.alert_error_rate_window_seconds)
    sleep = overrides.sleep or asyncio.sleep
    database = Database(
        settings.database_url.get_secret_value(), connect_timeout=settings.database_connect_timeout
    )
    redis = (
        redis_client(settings.redis_url.get_secret_value(), timeout=settings.redis_timeout)
        if settings.redis_url
        else None
    )
    stores: list[FailoverBreakerStore] = []

    def store_for(name: str) -> BreakerStore:
        if redis is None:
            return MemoryBreakerStore()
        shared = RedisBreakerStore(
            redis, breaker_key(settings.redis_namespace, name), timeout=settings.redis_timeout
        )
        store = FailoverBreakerStore(shared, breaker=name)
        stores.append(store)
        return store

    bgg_breaker = AsyncCircuitBreaker(
        BGG_BREAKER,
        fail_max=settings.bgg_breaker_fail_max,
        reset_timeout=settings.bgg_breaker_reset_timeout,
        store=store_for(BGG_BREAKER),
        trial_ttl=settings.bgg_request_timeout + 5,
    )
    cdn_breaker = AsyncCircuitBreaker(
        CDN_BREAKER,
        fail_max=settings.cdn_breaker_fail_max,
        reset_timeout=settings.cdn_breaker_reset_timeout,
        store=store_for(CDN_BREAKER),
        trial_ttl=settings.thumbnail_timeout + 5,
    )
    bgg_http = build_http_client(
        connect_timeout=settings.bgg_connect_timeout,
        read_timeout=settings.bgg_read_timeout,
        api_token=settings.bgg_api_token.get_secret_value() if settings.bgg_api_token else None,
    )
    # Each worker process builds its own (`serve --workers 2`: two pools, one child each).
    parse_processes = (
        ProcessParser(settings.bgg_parse_processes) if settings.bgg_parse_processes else None
    )
    bgg = BggClient(
        base_url=settings.bgg_base_url,
        http=bgg_http,
        breaker=bgg_breaker,
        policy=bgg_retry_policy(settings),
        request_timeout=settings.bgg_request_timeout,
        max_id=settings.bgg_max_id,
        budget=RetryBudget(
            settings.bgg_retry_budget_ratio,
            min_per_second=settings.bgg_retry_budget_min_per_second,
        ),
        sleep=sleep,
        on_fetch=lambda attempts, outcome: _count_fetch(metrics, attempts, outcome),
        processes=parse_processes,
    )
    cdn_http = build_http_client(
        connect_timeout=min(settings.thumbnail_timeout, 5.0),
        read_timeout=settings.thumbnail_timeout,
    )
    downloader = ThumbnailDownloader(
        http=cdn_http,
        breaker=cdn_breaker,
        directory=settings.thumbnail_dir,
        max_bytes=settings.thumbnail_max_bytes,
        allowed_hosts=settings.image_allowed_hosts,
        policy=thumbnail_retry_policy(settings),
        attempt_timeout=settings.thumbnail_timeout,
        sleep=sleep,
        resolver=overrides.resolver or resolve_host,
    )
    runner = TaskRunner(settings.background_concurrency)
    recorder = TaskRecorder(
        database,
        Spool(settings.spool_path),
        record_failures=settings.record_failures,
        on_record=lambda record: _count_record(metrics, record),
        replay_seconds=settings.spool_replay_seconds,
    )
    metrics.watch_spool(recorder.spool)
    for breaker in (bgg_breaker, cdn_breaker):
        _watch_breaker(metrics, breaker)
    pool = JobPool(
        database,
        recorder,
        slots=settings.background_concurrency,
        lease_seconds=settings.job_lease_seconds,
        lease_margin=settings.job_lease_margin_seconds,
        poll_seconds=settings.job_poll_seconds,
    )
    pool.register(THUMBNAIL_TASK, thumbnail_handler(downloader, recorder))
    pool.on_claim = metrics.count_claim
    pool.on_hand_back = metrics.count_handback
    importer = GameImporter(
        bgg=bgg,
        database=database,
        job_max_attempts=settings.job_max_attempts,
        on_enqueued=pool.wake,
    )
    pool.register(IMPORT_TASK, import_handler(importer, recorder, pool))
    pool.limit_claims(IMPORT_TASK, lambda: bgg_import_claims(bgg_breaker))
    recovery = Recovery(
        database=database,
        breaker=cdn_breaker,
        task_type=THUMBNAIL_TASK,
        retrier=thumbnail_retrier(downloader, recorder),
        runner=runner,
        auto_retry_max=settings.auto_retry_max,
        lookback_seconds=settings.auto_retry_lookback_seconds,
        check_seconds=settings.recovery_check_seconds,
        concurrency=settings.background_concurrency,
    )
    # BGG's own probe (BreakerProbe) is its half-open trial, so this recovery only sweeps.
    import_recovery = Recovery(
        database=database,
        breaker=bgg_breaker,
        task_type=IMPORT_TASK,
        retrier=job_retrier(
            database,
            task_type=IMPORT_TASK,
            max_attempts=settings.job_max_attempts,
            on_enqueued=pool.wake,
        ),
        runner=runner,
        auto_retry_max=settings.auto_retry_max,
        lookback_seconds=settings.auto_retry_lookback_seconds,
        check_seconds=settings.recovery_check_seconds,
        concurrency=settings.background_concurrency,
        probe=False,
    )
    alerter = Alerter(
        settings=settings,
        window=window,
        breakers=[bgg_breaker, cdn_breaker],
        database=database,
        redis=redis,
        on_unresolved=metrics.unresolved.set,
    )
    return Services(
        settings=settings,
        database=database,
        breakers={BGG_BREAKER: bgg_breaker, CDN_BREAKER: cdn_breaker},
        bgg=bgg,
        downloader=downloader,
        runner=runner,
        recorder=recorder,
        pool=pool,
        job_retention=Periodic(
            "job retention",
            JOB_RETENTION_INTERVAL,
            lambda: pool.delete_finished(settings.job_retention_days),
        ),
        importer=importer,
        recovery=recovery,
        import_recovery=import_recovery,
        metrics=metrics,
        alerter=alerter,
        bgg_http=bgg_http,
        cdn_http=cdn_http,
        redis=redis,
        stores=stores,
        parse_processes=parse_processes,
        bgg_probe=BreakerProbe.from_settings(settings, bgg),
        job_gauges=JobGauges(database, metrics, settings.job_metrics_seconds),
    )


def bgg_import_claims(breaker: AsyncCircuitBreaker) -> int | None:
    """How many `bgg_import` jobs one claim may take: any number while the BGG breaker is
    closed (as this process last saw it), else one, the trial; the rest stay queued rather
    than each being claimed, rejected and handed back."""
    return None if breaker.last_known_state == CLOSED else 1


def _count_fetch(metrics: Metrics, attempts: int, outcome: str) -> None:
    if outcome == BggUnavailable.__name__:
        attempts -= 1  # the last attempt was the breaker's rejection: nothing was sent
    if attempts:
        metrics.bgg_attempts.labels("first").inc()
        if attempts > 1:
            metrics.bgg_attempts.labels("retry").inc(attempts - 1)
    metrics.bgg_fetches.labels(outcome).inc()


def _count_record(metrics: Metrics, record: TaskRecord) -> None:
    metrics.task_runs.labels(record.task_type, record.outcome, record.trigger).inc()
    if record.outcome == "failure":
        metrics.failures_recorded.labels(record.task_type, record.error_type or "unknown").inc()
    metrics.count_thumbnail_retries(record)


def _watch_breaker(metrics: Metrics, breaker: AsyncCircuitBreaker) -> None:
    metrics.breaker_state.labels(breaker.name).set(STATE_VALUES["closed"])

    def transition(change: Transition) -> None:
        metrics.breaker_state.labels(change.breaker).set(STATE_VALUES[change.to_state])
        if change.local:  # each worker counts the changes it made, so the sum is right
            metrics.breaker_transitions.labels(
                change.breaker, change.from_state, change.to_state
            ).inc()

    breaker.on_transition(transition)
    breaker.on_rejection(lambda _exc: metrics.breaker_rejections.labels(breaker.name).inc())
