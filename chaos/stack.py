"""Everything a run starts on loopback, and its teardown.

Always (also with `--target`), once per run and reset between scenarios: the fake BGG and
the fake image CDN (threads), the TCP fault proxy with one proxy in front of each (so the
service's traffic crosses real sockets that can be cut) and its HTTP control API, and the
alert webhook receiver (`--webhook-port`, or a free port). The fake BGG rewrites thumbnail
URLs to the CDN *proxy*, so thumbnail downloads can be faulted at either layer.
`addresses()` says where each listens.

Services, started when a scenario first needs them and kept for the scenarios after it
(a start costs ~5 s on a 2-core machine, most of it importing the app):

| deployment | what | used by |
|---|---|---|
| `main` | one `python -m system serve --workers N` (SQLite in the run's temp folder, or a |
|   | throw-away PostgreSQL database with `--database-url postgresql+...`) | most scenarios |
| `postgresql` | like `main`, on a throw-away PostgreSQL database behind the proxy | |
|   |   | database_outage |
| `dns` | like `main`, with a BGG host name that cannot resolve (`.invalid`, | |
|   | RFC 6761) | network_errors |
| `pair` | two service processes sharing a SQLite file and a private redis-server (behind the |
|   | proxy): "two workers" whose requests the harness can address one by one | redis scenarios |
| `workers` | an API-only `serve` (`BACKGROUND_WORKERS_IN_PROCESS=false`) and two | worker_crash |
|   | `python -m system worker` processes on its database: the job workers |   |

`close()` stops all of it, also after a failure or Ctrl-C; nothing outlives the run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.client import ServiceClient
from chaos.database import Backend, PostgresBackend, SqliteBackend
from chaos.fakes import BggApp, CdnApp, RunningServer, create_bgg_app, create_cdn_app
from chaos.fakes.app import CONTROL_PREFIX
from chaos.fakes.server import run_in_thread
from chaos.promises import HARNESS
from chaos.proxy import ProxyServer
from chaos.redis_server import RedisServer
from chaos.sentry_ingest import SentryIngest
from chaos.service import (
    REPO_ROOT,
    HarnessError,
    ServiceProcess,
    WorkerProcess,
    check_port_free,
    source_env,
)
from chaos.webhook import WebhookReceiver

UNRESOLVABLE_HOST = "bgg.chaos.invalid"


@dataclass
class Options:
    """What the command line chose for the run."""

    seed: int
    report_dir: Path
    workers: int = 1
    service_env: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    postgres_url: str | None = None
    target: str | None = None
    admin_token: str | None = None
    bgg_port: int = 0
    cdn_port: int = 0
    service_port: int | None = None
    spool_path: Path | None = None
    #: The alert receiver's port (0: a free one). With `--target`, giving it is how a user
    #: says their service's ALERT_WEBHOOK_URL points at it; without, alerts are not judged.
    webhook_port: int = 0
    #: The TCP proxies' HTTP control API's port (0: a free one).
    proxy_control_port: int = 0
    #: The fake BGG also answers the real collection fixture's 40 games (the demo's).
    collection_games: bool = False
    #: Run the service from this copy of the source (a folder holding `system/`) instead of
    #: the repository: `python -m chaos mutants` runs mutated copies this way.
    service_source: Path | None = None

    @property
    def alerting_unchecked(self) -> str | None:
        """Why the alert hypotheses cannot be judged in this run (None: they can)."""
        if self.target is None or self.webhook_port:
            return None
        return (
            "--target without --webhook-port: the harness cannot know the service's "
            "ALERT_WEBHOOK_URL; start it with ALERT_WEBHOOK_URL=http://127.0.0.1:N/hooks/alerts "
            "and give --webhook-port N to judge the alerts"
        )


@dataclass
class Deployment:
    """One or more service processes the scenarios talk to."""

    name: str
    clients: list[ServiceClient]
    processes: list[ServiceProcess] = field(default_factory=list)
    backend: Backend | None = None
    spool_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> ServiceClient:
        """The first (or only) service."""
        return self.clients[0]

    def rss_bytes(self) -> int | None:
        """Memory of the processes the harness started (None for a target)."""
        if not self.processes:
            return None
        return sum(p.rss_bytes() for p in self.processes)


class Stack:
    """Starts the upstream fakes, proxies and services; `close()` stops everything."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.token = options.admin_token or secrets.token_urlsafe(24)
        self.tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
        # The proxies' HTTP control API on a free loopback port, so a person (or a load run)
        # can switch TCP faults during a run too; its URL is in the `upstreams` event.
        self.proxies = ProxyServer(seed=options.seed, control_port=options.proxy_control_port)
        self.webhook = WebhookReceiver(port=options.webhook_port)
        #: Where the services of scenarios that require "sentry" report (a real DSN).
        self.sentry = SentryIngest()
        self._servers: list[RunningServer] = []
        self._urls: dict[str, str] = {}  # the fakes' own URLs (behind the proxies)
        self._redis: RedisServer | None = None
        self._deployments: dict[str, Deployment] = {}
        self._backends: list[Backend] = []
        self.bgg: BggApp
        self.cdn: CdnApp

    # ------------------------------------------------------------------ upstreams

    def start(self) -> None:
        """Check the fixed ports, then start fakes, proxies and the webhook receiver."""
        fixed = (self.options.bgg_port, self.options.cdn_port, self.options.service_port,
                 self.options.webhook_port, self.options.proxy_control_port)  # fmt: skip
        for port in fixed:
            if port:
                check_port_free(port)
        self.proxies.start()
        self.webhook.start()
        self.sentry.start()
        self.cdn = create_cdn_app(seed=self.options.seed)
        self._urls["cdn"] = self._serve(self.cdn, "cdn")
        self.proxies.create("cdn", self._urls["cdn"].removeprefix("http://"),
                            listen=("127.0.0.1", self.options.cdn_port))  # fmt: skip
        self.bgg = create_bgg_app(
            seed=self.options.seed,
            cdn_base_url=self.proxies.url("cdn"),
            collection_games=self.options.collection_games,
        )
        self._urls["bgg"] = self._serve(self.bgg, "bgg")
        self.proxies.create("bgg", self._urls["bgg"].removeprefix("http://"),
                            listen=("127.0.0.1", self.options.bgg_port))  # fmt: skip

    def _serve(self, app: BggApp | CdnApp, name: str) -> str:
        server = run_in_thread(app, name=name)
        self._servers.append(server)
        return server.url

    def addresses(self) -> dict[str, Any]:
        """Where everything the harness started listens, and the control APIs' URLs."""
        bgg, cdn = self._urls["bgg"], self._urls["cdn"]
        return {
            "bgg_base_url": self.bgg_base_url,
            "bgg_control_url": f"{bgg}{CONTROL_PREFIX}",
            "cdn_url": self.proxies.url("cdn"),
            "cdn_control_url": f"{cdn}{CONTROL_PREFIX}",
            "proxy_control_url": self.proxies.control_url,
            "proxies": {name: self.proxies.url(name) for name in ("bgg", "cdn")},
            "webhook_url": self.webhook.url,
        }

    @property
    def bgg_base_url(self) -> str:
        """`BGG_BASE_URL` for a service: the BGG proxy."""
        return self.proxies.url("bgg") + "/xmlapi2"

    def reset_upstreams(self, seed: int) -> None:
        """No faults, empty logs, every proxy up without toxics; fakes re-seeded."""
        for app in (self.bgg, self.cdn):
            app.engine.reset(seed=seed)
            app.log.reset()
        self.proxies.reset()

    # ------------------------------------------------------------------ services

    def target_env(self) -> dict[str, str]:
        """What a service must be configured with to be run against (`--target`)."""
        return {
            "BGG_BASE_URL": self.bgg_base_url,
            "IMAGE_ALLOWED_HOSTS": "127.0.0.1:*",  # the fake CDN, on whatever port it has
            "ADMIN_TOKENS": self.token,
            "ALERT_WEBHOOK_URL": self.webhook.url,
            **HARNESS.service_env(),
        }

    def _env(self, label: str, backend: Backend, extra: dict[str, str]) -> dict[str, str]:
        folder = self.tmp / label
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(self.tmp)),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "ENVIRONMENT": "chaos",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": backend.service_url,
            "THUMBNAIL_DIR": str(folder / "thumbnails"),
            "SPOOL_PATH": str(folder / "spool.jsonl"),
            **self.target_env(),
            **extra,
        }
        # Last, so a candidate configuration overrides the harness (and is judged for it).
        env.update(self.options.service_env)
        return env

    async def deployment(
        self,
        kind: str,
        label: str | None = None,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Deployment:
        """A deployment of `kind` (see the table above), started fresh under `label`, with
        the scenario's own settings `env` (under `--service-env`). Its (first) service listens
        on `port`, or on `--service-port` for `main`, or on a free port.

        Every scenario gets services of its own (a fresh process, database, spool and
        thumbnail folder), so nothing one scenario did (an open breaker, a drained retry
        budget, a firing alert, its rows) can change another's result. With `--target` there
        is one service for all, as it is.
        """
        label = label or kind
        if label in self._deployments:
            return self._deployments[label]
        if self.options.target is not None:
            if kind != "main":
                raise HarnessError(f"deployment {kind!r} needs a service of the harness's own")
            deployment = await self._target()
        else:
            deployment = await self._start(kind, label, env or {}, port)
        self._deployments[label] = deployment
        return deployment

    async def _target(self) -> Deployment:
        assert self.options.target is not None
        backend: Backend | None = None
        url = self.options.database_url
        if url is not None and url.startswith("sqlite"):
            backend = SqliteBackend(Path(url.split(":///", 1)[1]))
        elif url is not None:
            backend = PostgresBackend.existing(url)
        return Deployment(
            "target",
            [ServiceClient(self.options.target, self.token)],
            backend=backend,
            spool_path=self.options.spool_path,
        )

    async def _backend(self, label: str, *, postgres_url: str | None) -> Backend:
        backend: Backend
        if postgres_url is not None:
            pg = PostgresBackend(postgres_url, self.proxies, proxy_name=f"pg-{label}")
            self._backends.append(pg)  # registered first: dropped even if creation half-fails
            await pg.create()
            return pg
        if self.options.database_url is not None:
            backend = SqliteBackend(Path(self.options.database_url.split(":///", 1)[1]))
        else:
            backend = SqliteBackend(self.tmp / label / "bgg.db")
        self._backends.append(backend)
        return backend

    def _redis_address(self) -> str:
        """A private redis-server behind the proxy `redis` (started once)."""
        if self._redis is None:
            self._redis = RedisServer(self.tmp / "redis")
            self._redis.start()
            self.proxies.create("redis", self._redis.address)
        host, port = self.proxies.address("redis")
        return f"redis://{host}:{port}/0"

    async def _start(
        self, kind: str, label: str, scenario_env: dict[str, str], port: int | None = None
    ) -> Deployment:
        url = self.options.database_url
        main_pg = url if url is not None and url.startswith("postgresql") else None
        extra: dict[str, str] = dict(scenario_env)
        count, workers = 1, self.options.workers
        if kind == "main":
            backend = await self._backend(label, postgres_url=main_pg)
        elif kind == "postgresql":
            if self.options.postgres_url is None and main_pg is None:
                raise HarnessError("no PostgreSQL configured (TEST_DATABASE_URL / --database-url)")
            backend = await self._backend(label, postgres_url=self.options.postgres_url or main_pg)
        elif kind == "dns":
            backend = await self._backend(label, postgres_url=main_pg)
            bgg_port = self.proxies.address("bgg")[1]
            extra["BGG_BASE_URL"] = f"http://{UNRESOLVABLE_HOST}:{bgg_port}/xmlapi2"
        elif kind == "pair":
            backend = await self._backend(label, postgres_url=main_pg)
            count, workers = 2, 1
        elif kind == "workers":
            backend = await self._backend(label, postgres_url=main_pg)
            extra["BACKGROUND_WORKERS_IN_PROCESS"] = "false"
        else:
            raise HarnessError(f"unknown deployment {kind!r}")
        if kind == "pair" or workers > 1:
            # Several workers share breaker state only through Redis (README), so give them
            # one, under a namespace of their own so no earlier scenario's state leaks in.
            extra["REDIS_URL"] = await asyncio.to_thread(self._redis_address)
            extra["REDIS_NAMESPACE"] = f"chaos-{label}"
        env = self._env(label, backend, extra)
        processes = []
        for index in range(count):
            fixed = port or (self.options.service_port if kind == "main" else None)
            processes.append(
                ServiceProcess(
                    f"{label}-{index}" if count > 1 else label,
                    env,
                    log_path=self.options.report_dir / "logs" / f"service-{label}-{index}.log",
                    port=fixed if index == 0 else None,
                    workers=workers,
                    source=self.options.service_source,
                )
            )
        deployment = Deployment(
            label,
            [ServiceClient(p.url, self.token) for p in processes],
            processes,
            backend,
            Path(env["SPOOL_PATH"]),
            env,
        )
        self._deployments[label] = deployment  # so close() stops it even if start-up fails
        if len(processes) > 1:
            # Migrate once before the replicas start, as `serve --workers N` does.
            await asyncio.to_thread(_migrate, env, self.options.service_source)
        for process in processes:
            process.start()
        for process in processes:
            await asyncio.to_thread(process.wait_ready)
        if kind == "workers":
            # After the API process migrated: a worker waits for the schema, it never makes it.
            for index in range(2):
                worker = WorkerProcess(
                    f"{label}-worker-{'ab'[index]}",
                    env,
                    log_path=self.options.report_dir / "logs" / f"worker-{label}-{index}.log",
                    concurrency=int(env.get("BACKGROUND_CONCURRENCY", "4")),
                    source=self.options.service_source,
                )
                deployment.processes.append(worker)
                worker.start()
            for process in deployment.processes[count:]:
                await asyncio.to_thread(process.wait_ready)
        return deployment

    async def release(self, label: str) -> None:
        """Stop a deployment once its scenario is done (frees the CPU and the port)."""
        if self.options.target is not None:
            return  # someone else's service: nothing of ours to stop
        deployment = self._deployments.pop(label, None)
        if deployment is not None:
            await _stop(deployment)

    async def aclose(self) -> None:
        """Stop services and drop what was created (async part of the teardown)."""
        for deployment in list(self._deployments.values()):
            await _stop(deployment)
        self._deployments.clear()
        for backend in self._backends:
            try:
                await backend.close()
            except Exception as exc:  # keep tearing down the rest
                print(f"warning: could not clean up a {backend.kind} database: {exc}")
        self._backends.clear()

    def close(self) -> None:
        """Stop fakes, proxies, Redis and the webhook; remove the temp folder."""
        for deployment in self._deployments.values():
            for process in deployment.processes:
                process.stop()
        for server in self._servers:
            server.stop()
        self._servers.clear()
        self.webhook.stop()
        self.sentry.stop()
        self.proxies.stop()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
        shutil.rmtree(self.tmp, ignore_errors=True)


async def _stop(deployment: Deployment) -> None:
    for client in deployment.clients:
        await client.aclose()
    await asyncio.gather(*(asyncio.to_thread(p.stop) for p in deployment.processes))


def _migrate(env: dict[str, str], source: Path | None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "system", "migrate"],
        env=source_env(env, source),
        cwd=source or REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise HarnessError(f"migration failed: {line}")
