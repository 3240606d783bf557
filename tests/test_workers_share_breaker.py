"""Two real `python -m system serve` processes sharing a redis-server of the test's own.

Failures seen through one worker open the breaker for the other; with Redis stopped both
keep serving and their breakers keep working on their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chaos.fakes import FaultRule
from chaos.service import ServiceProcess
from tests.conftest import ADMIN_TOKEN, REPO_ROOT
from tests.fakes import Upstreams
from tests.services import RedisServer, redis_server, serve

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Worker:
    """One `python -m system serve` process, addressed directly."""

    def __init__(self, process: ServiceProcess) -> None:
        self.url = process.url

    def imports(self, bgg_id: int) -> httpx.Response:
        return httpx.post(f"{self.url}/api/admin/games/import/{bgg_id}", headers=AUTH, timeout=10)

    def breaker(self) -> dict[str, object]:
        response = httpx.get(
            f"{self.url}/api/admin/monitoring/circuit-breaker-status", headers=AUTH, timeout=5
        )
        return dict(response.json())


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def workers(
    redis: RedisServer, upstreams: Upstreams, tmp_path: Path
) -> Iterator[tuple[Worker, Worker]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "ENVIRONMENT": "test",
        "BGG_BASE_URL": upstreams.bgg_base_url,
        "BGG_RETRY_ATTEMPTS": "1",  # one request per import: the count is easy to follow
        "BGG_BREAKER_FAIL_MAX": "4",
        "REDIS_URL": redis.url,
        "IMAGE_ALLOWED_HOSTS": f"127.0.0.1:{upstreams.cdn.port}",
        "THUMBNAIL_DIR": str(tmp_path / "thumbs"),
        "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
    }
    subprocess.run(
        [sys.executable, "-m", "system", "migrate"], env=env, cwd=REPO_ROOT, check=True,
        capture_output=True,
    )  # fmt: skip
    with serve(env, tmp_path, name="a") as a, serve(env, tmp_path, name="b") as b:
        yield Worker(a), Worker(b)


def test_failures_through_one_worker_open_the_breaker_for_the_other(
    workers: tuple[Worker, Worker], upstreams: Upstreams
) -> None:
    a, b = workers
    upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
    assert a.imports(13).status_code == 502
    assert b.imports(13).status_code == 502
    assert a.imports(13).status_code == 502
    assert b.imports(13).status_code == 502  # the 4th failure between them opens it
    assert upstreams.thing_requests() == 4
    for worker in (a, b):
        rejected = worker.imports(28720)
        assert rejected.status_code == 503 and "Retry-After" in rejected.headers
        status = worker.breaker()
        assert (status["state"], status["state_storage"]) == ("open", "redis")
    assert upstreams.thing_requests() == 4


def test_without_redis_both_keep_serving_with_local_breakers(
    workers: tuple[Worker, Worker], upstreams: Upstreams, redis: RedisServer
) -> None:
    a, b = workers
    assert a.imports(28720).status_code == 201
    redis.stop()
    assert b.imports(28720).status_code == 200  # Redis gone: imports still work
    assert httpx.get(f"{a.url}/api/public/games", timeout=5).json()["total"] == 1
    upstreams.bgg_app.engine.set_rules([FaultRule(status=503, path="/thing")])
    for _ in range(4):
        assert a.imports(13).status_code == 502
    assert a.imports(13).status_code == 503, "a's local breaker must open"
    assert a.breaker()["state_storage"] == "local"
    assert b.imports(13).status_code == 502, "b never saw those failures"
    assert upstreams.thing_requests() == 2 + 4 + 1
