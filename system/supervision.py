"""Workers of `serve --workers N` exit when the process that started them dies.

uvicorn's supervisor stops its workers when it is asked to stop, but a supervisor killed
with SIGKILL (or by the OOM killer) asks nothing: the workers kept serving on the inherited
socket, and the next start failed with "Address already in use". `serve` names itself in
`SUPERVISOR_PID_ENV`; each worker, when its app starts, asks Linux for SIGTERM when its parent
dies (`prctl(PR_SET_PDEATHSIG)`), or elsewhere watches its parent id from a thread. SIGTERM
is uvicorn's graceful stop: requests in flight finish, background tasks drain.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

#: Set by `serve` for its workers: the pid of the process that started them.
SUPERVISOR_PID_ENV = "BGG_SERVE_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
_WATCH_EVERY = 1.0


def mark_supervisor() -> None:
    """Called by `serve` before it starts workers: they will follow this process."""
    os.environ[SUPERVISOR_PID_ENV] = str(os.getpid())


def follow_supervisor() -> None:
    """In a worker: arrange to receive SIGTERM when the supervisor dies (no-op elsewhere)."""
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected or not expected.isdigit() or int(expected) == os.getpid():
        return  # not a worker: a single-process `serve`, a test, a script
    supervisor = int(expected)
    if not (sys.platform.startswith("linux") and set_parent_death_signal(signal.SIGTERM)):
        threading.Thread(
            target=_watch_parent, args=(supervisor,), name="supervisor-watch", daemon=True
        ).start()
    # The supervisor may have died before the request above: then no signal will come.
    if os.getppid() != supervisor:
        _supervisor_gone(supervisor)


def set_parent_death_signal(sig: signal.Signals) -> bool:
    """Ask Linux to send this process `sig` when its parent dies; False where it cannot."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
            return True
    return False


def _watch_parent(supervisor: int) -> None:
    while os.getppid() == supervisor:
        time.sleep(_WATCH_EVERY)
    _supervisor_gone(supervisor)


def _supervisor_gone(supervisor: int) -> None:
    logger.warning("supervisor %d is gone: this worker stops", supervisor)
    os.kill(os.getpid(), signal.SIGTERM)
