"""`serve --workers 2` with `BGG_PARSE_PROCESSES=1`: each worker parses in a child of its own,
and no parse process outlives its worker, after a SIGTERM to `serve` or a SIGKILL to a worker.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chaos.service import ServiceProcess
from system.bgg.parse_process import CHILD_NICENESS
from tests.conftest import ADMIN_TOKEN
from tests.fakes import Upstreams
from tests.support.processes import alive, children, tree
from tests.support.waiting import eventually_sync

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc"),
]


def _parse_children(pid: int) -> list[int]:
    """The parse processes under `pid` (they alone run `CHILD_NICENESS` nicer than it)."""
    found = []
    nice = os.getpriority(os.PRIO_PROCESS, pid)
    for child in tree(pid):
        try:
            if os.getpriority(os.PRIO_PROCESS, child) == min(nice + CHILD_NICENESS, 19):
                found.append(child)
        except ProcessLookupError:
            continue
    return found


@pytest.fixture
def service(upstreams: Upstreams, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "ENVIRONMENT": "test",
        "BGG_BASE_URL": upstreams.bgg_base_url,
        "BGG_PARSE_PROCESSES": "1",
        "IMAGE_ALLOWED_HOSTS": f"127.0.0.1:{upstreams.cdn.port}",
        "THUMBNAIL_DIR": str(tmp_path / "thumbs"),
        "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
    }
    process = ServiceProcess("parse", env, log_path=tmp_path / "serve.log", workers=2)
    process.start()
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.stop()  # the whole group: nothing outlives the test either way


def _import_until_parsed(service: ServiceProcess) -> list[int]:
    """Import games until a worker has started its parse process; the parse children."""
    assert service.process is not None
    parent = service.process.pid
    bgg_id = 0

    def parsed() -> list[int]:
        nonlocal bgg_id
        bgg_id += 1
        response = httpx.post(
            f"{service.url}/api/admin/games/import/{bgg_id}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return _parse_children(parent)

    return eventually_sync(parsed, "a parse process", within=30)


def test_sigterm_to_serve_leaves_no_process_behind(service: ServiceProcess) -> None:
    assert service.process is not None
    parent = service.process.pid
    _import_until_parsed(service)
    everything = tree(parent)
    os.kill(parent, signal.SIGTERM)
    service.process.wait(30)
    left = eventually_sync(
        lambda: [pid for pid in everything if alive(pid)],
        "every process of the service to exit",
        until=lambda running: not running,
        within=30,
    )
    assert left == []
    log = service.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log


def test_a_killed_worker_takes_its_parse_process_with_it(service: ServiceProcess) -> None:
    assert service.process is not None
    (child, *_others) = _import_until_parsed(service)
    (worker,) = [pid for pid in children(service.process.pid) if child in tree(pid)]
    os.kill(worker, signal.SIGKILL)
    eventually_sync(
        lambda: not alive(child), "the parse process to exit after its worker", within=30
    )
