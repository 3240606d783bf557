"""`serve --workers N` workers exit when their parent dies, and free the port (issue 12, item 9).

A SIGKILLed parent cannot stop its workers: they must notice on their own, or they keep
serving on the port and the next start fails with "Address already in use".
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from chaos.service import HarnessError, ServiceProcess, check_port_free
from tests.conftest import ADMIN_TOKEN
from tests.support.processes import alive, children
from tests.support.waiting import eventually_sync

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_serve_parent_is_killed(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "ENVIRONMENT": "test",
        "THUMBNAIL_DIR": str(tmp_path / "thumbs"),
        "SPOOL_PATH": str(tmp_path / "spool.jsonl"),
    }
    service = ServiceProcess("orphans", env, log_path=tmp_path / "serve.log", workers=2)
    service.start()
    try:
        service.wait_ready(60)
        assert service.process is not None
        parent = service.process.pid
        # Both spawned (ready means one of them answers).
        workers = eventually_sync(
            lambda: children(parent), "two workers", until=lambda pids: len(pids) >= 2, within=30
        )
        os.kill(parent, signal.SIGKILL)
        service.process.wait(10)
        eventually_sync(
            lambda: [pid for pid in workers if alive(pid)],
            "the workers to exit after their parent died",
            until=lambda running: not running,
            within=30,
        )
        try:
            check_port_free(service.port)
        except HarnessError as exc:
            pytest.fail(str(exc))
    finally:
        service.stop()  # the whole process group: nothing outlives the test either way
