"""Parse BGG answers in a child process (`BGG_PARSE_PROCESSES`), so no parse holds our GIL.

A thread parse still shares the worker's GIL: the event loop waits up to the 5 ms switch
interval each time it wants it back. A child process has its own interpreter; only the body
(bytes) goes in and a small `BggGame` (a slotted dataclass) or a `BggError` comes back, both
pickled. The child is started with `spawn`, never `fork`: the worker has threads and a
running event loop, and a forked copy of those can deadlock. Not `forkserver` either: a fork
server lives on while any child it made does, so a child of it cannot notice that its worker
died, while a spawned child is the worker's own and asks Linux to stop it when the worker
dies (`PR_SET_PDEATHSIG`: no parse process outlives a worker killed outright). It runs at a
lower priority (`nice`), so on a busy machine the requests being answered get the CPU first.

A child that dies (killed, out of memory) breaks the pool: the import it was parsing, and
those of this worker waiting for it, get `ParseProcessLost` (503); the pool is replaced, and
the next import parses in a new child.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from system.bgg.errors import BggError
from system.bgg.models import BggGame
from system.bgg.parser import parse_thing
from system.supervision import set_parent_death_signal

__all__ = ["ParseProcessLost", "ProcessParser", "parse_in_child"]

#: Added to the child's niceness: parsing a big answer can wait, answering requests cannot.
CHILD_NICENESS = 10


class ParseProcessLost(BggError):
    """The process parsing BGG's answer died before it finished (killed, out of memory).

    BGG answered, so this is no breaker failure; it is not retried either (the caller is
    told at once, and the next import parses in a new process).
    """

    breaker_failure = False
    #: A new process is ready for the next import at once: the caller may try again in 1 s.
    retry_after: float | None = 1.0


def parse_in_child(body: bytes, *, bgg_id: int, max_bytes: int) -> BggGame:
    """`parse_thing` without its pauses: they only hand the GIL to a loop in the same process."""
    return parse_thing(body, bgg_id=bgg_id, max_bytes=max_bytes, feed_pause=0.0)


def _child_started(niceness: int, worker: int) -> None:
    os.nice(niceness)
    # Ctrl-C reaches the whole process group; the worker decides when its child stops
    # (shutdown), and an interrupted idle child would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker killed outright (SIGKILL, out of memory) never shuts its pool down: its
    # child stops when it dies. Children are started from the event loop's thread (the
    # pool spawns them at `submit`), which lives as long as the worker.
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != worker:  # it died before the request above: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


class ProcessParser:
    """At most `processes` parses at a time, each in a child process; built and closed by
    `system/container.py`. The pool and its children start at the first parse."""

    def __init__(
        self,
        processes: int = 1,
        *,
        parser: Callable[..., BggGame] = parse_in_child,
        niceness: int = CHILD_NICENESS,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._processes = processes
        self._parser = parser
        self._niceness = niceness
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _current_pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the parse processes are shut down")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_started,
                initargs=(self._niceness, os.getpid()),
            )
        return self._pool

    async def parse(self, body: bytes, *, bgg_id: int, max_bytes: int) -> BggGame:
        """The parser's answer from a child: a `BggGame` or the `BggError` it raised."""
        pool = self._current_pool()
        call = functools.partial(self._parser, body, bgg_id=bgg_id, max_bytes=max_bytes)
        try:
            return await asyncio.wrap_future(pool.submit(call))
        except BggError as exc:
            # The child's traceback rides along as the cause; an expected answer of BGG's
            # reaches the API (and Sentry) exactly as a parse in a thread raises it.
            exc.__cause__ = None
            raise
        except BrokenProcessPool:
            self._discard(pool)
            raise ParseProcessLost(
                "the process parsing BGG's answer stopped before it finished; try the import again",
                bgg_id=bgg_id,
            ) from None

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        # Every parse waiting on the broken pool lands here; only the first replaces it.
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Stop the children: a parse under way is finished first, queued ones are dropped."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
