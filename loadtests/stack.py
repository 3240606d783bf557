"""What a load run needs on loopback: the fake CDN and BGG, Redis (if it answers), the service.

`running_stack()` starts the fakes in threads of this process (`chaos.fakes`), starts
`python -m system serve` as a subprocess on a free port with a throw-away SQLite database
and the settings a load run wants, waits until it is ready, and on exit stops the service
(SIGTERM, then SIGKILL of its process group), the fakes, and deletes the run's Redis keys.
Anything that prevents the start raises `StackError` with a one-line message.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from loadtests import names

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SEED_FIXTURE_IDS = (28720, 223555, 1001, 31260, 283)
"""BGG ids the fake serves from real fixture files; seeding starts with them."""

LOAD_DEFAULTS: Mapping[str, str] = {
    "ENVIRONMENT": "loadtest",
    "LOG_LEVEL": "WARNING",
    "IMAGE_ALLOWED_HOSTS": "127.0.0.1:*",  # the fake CDN, on whatever port it has
    # The outage shape's recovery phase lasts ~18 s by default: a 60 s reset timeout would
    # keep the breaker open past the end of the run, so a run could never show it closing.
    "BGG_BREAKER_RESET_TIMEOUT": "5",
}
"""Service settings of a load run, under whatever `--service-env` says."""


class StackError(Exception):
    """The stack could not be started; the message is one line."""


@dataclass(frozen=True, slots=True)
class Stack:
    """A running service (and the fakes it talks to)."""

    url: str
    token: str
    bgg_url: str | None
    redis_url: str | None
    redis_namespace: str | None
    workers: int
    database_url: str
    service_env: Mapping[str, str]


def redis_answers(url: str = DEFAULT_REDIS_URL, timeout: float = 0.3) -> bool:
    """True if a Redis server answers PING at `url`."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def delete_redis_keys(url: str, namespace: str) -> None:
    """Delete every key of one run's namespace (best effort)."""
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=500))
        if keys:
            client.delete(*keys)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()


def seed_catalogue(url: str, token: str, count: int) -> None:
    """Import `count` games (fixture ids first) so public visitors have something to read.

    Blocking httpx, not `chaos.client.ServiceClient`: that one is asyncio and records a call
    with no answer as an error name (`ConnectError`), without the URL and reason said here.
    """
    ids = [*SEED_FIXTURE_IDS, *range(1, max(0, count - len(SEED_FIXTURE_IDS)) + 1)][:count]
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with httpx.Client(trust_env=False, timeout=30, headers=headers) as http:
        for bgg_id in ids:
            target = f"{url}{names.IMPORT.replace('{bgg_id}', str(bgg_id))}"
            try:
                status = http.post(target).status_code
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # no HTTP answer at all
                raise StackError(f"seeding the catalogue failed: POST {target}: {exc}") from None
            if status not in (200, 201):
                raise StackError(
                    f"seeding the catalogue failed: importing BGG id {bgg_id} answered "
                    f"HTTP {status}"
                )


@contextmanager
def _service(
    env: Mapping[str, str], workers: int, log_path: Path, start_timeout: float
) -> Iterator[str]:
    """The service as the chaos harness runs it (its own process group, stopped in order)."""
    from chaos.service import HarnessError, ServiceProcess

    service = ServiceProcess("loadtest", dict(env), log_path=log_path, workers=workers)
    service.start()
    try:
        try:
            service.wait_ready(start_timeout)
        except HarnessError as exc:
            raise StackError(f"{exc} [log: {log_path}]") from None
        yield service.url
    finally:
        service.stop()


def _base_env(tmp: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.setdefault("HOME", str(tmp))
    return env


@contextmanager
def running_stack(
    *,
    workers: int,
    service_env: Mapping[str, str],
    log_path: Path,
    token: str | None = None,
    use_redis: bool = True,
    start_timeout: float = 60.0,
) -> Iterator[Stack]:
    """Fakes, Redis (when it answers) and the service; everything stopped on exit."""
    # Imported here: the fakes bring uvicorn and Starlette, which only a started stack needs.
    from chaos.fakes import bgg_base_url, create_bgg_app, create_cdn_app, run_in_thread

    token = token or secrets.token_urlsafe(18)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadtests-")))
        cdn = stack.enter_context(run_in_thread(create_cdn_app(), name="fake-cdn"))
        bgg = stack.enter_context(
            run_in_thread(create_bgg_app(cdn_base_url=cdn.url), name="fake-bgg")
        )
        env = _base_env(tmp)
        env.update(
            {
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/load.db",
                "ADMIN_TOKENS": token,
                "BGG_BASE_URL": bgg_base_url(bgg.url),
                "THUMBNAIL_DIR": str(tmp / "thumbnails"),
                "SPOOL_PATH": str(tmp / "failure-spool.jsonl"),
                **LOAD_DEFAULTS,
            }
        )
        redis_url = service_env.get("REDIS_URL")
        if redis_url is None and use_redis and redis_answers():
            redis_url = DEFAULT_REDIS_URL
        namespace = None
        if redis_url:
            env["REDIS_URL"] = redis_url
            namespace = service_env.get("REDIS_NAMESPACE")
            if namespace is None:  # a namespace of the run's own, deleted afterwards
                namespace = f"loadtest-{uuid.uuid4().hex[:12]}"
                env["REDIS_NAMESPACE"] = namespace
                stack.callback(delete_redis_keys, redis_url, namespace)
        env.update(service_env)
        url = stack.enter_context(_service(env, workers, log_path, start_timeout))
        yield Stack(
            url=url,
            token=token,
            bgg_url=bgg.url,
            redis_url=redis_url or None,
            redis_namespace=namespace,
            workers=workers,
            database_url=env["DATABASE_URL"],
            service_env={**LOAD_DEFAULTS, **service_env},
        )
