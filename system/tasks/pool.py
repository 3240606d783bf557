"""Workers that claim background jobs from the job table and run them under leases.

One `JobPool` per process (`serve` runs one in-process unless
`BACKGROUND_WORKERS_IN_PROCESS=false`; `python -m system worker` runs one alone). It claims up
to its free slots whenever it is woken (an enqueue in this process, a slot freed) or every
`JOB_POLL_SECONDS`, renews the leases of its running jobs every third of `JOB_LEASE_SECONDS`,
and stops a job whose lease it lost (another worker took it over) or could not renew in time
(it stops `JOB_LEASE_MARGIN_SECONDS` before the lease can expire, by its own monotonic clock,
so a worker cut off from the database never runs past its lease). At shutdown it stops
claiming, gives running jobs the drain time, and hands the rest back to the queue.

A handler finishes its job by recording its run (`TaskRecord.job_id`): the run row, the
failure row and the job's end are one transaction, fenced on the attempt. A job that cannot
run (unknown task type, a payload its handler refuses, too many lost leases) is failed with
a failure row, never retried forever. Design: docs/design/0001-job-queue.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from system.clock import utcnow
from system.db import jobs
from system.db.database import Database
from system.db.errors import describe
from system.db.jobs import ClaimedJob
from system.db.tasks import TaskRecord
from system.tasks.recording import TaskRecorder

logger = logging.getLogger(__name__)

#: Runs one claimed job to its end (it records its run, which finishes the job).
Handler = Callable[[ClaimedJob], Awaitable[None]]

#: How many jobs of one task type one claim may take now; None: no limit.
ClaimLimit = Callable[[], int | None]


class InvalidJobPayload(Exception):
    """The job's payload is not what its task type needs: running it again cannot help."""


def new_owner() -> str:
    """A lease owner id, new at each process start: `<host>:<pid>:<8 hex>`."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class _Running:
    job: ClaimedJob
    task: asyncio.Task[None]
    #: Monotonic time by which the lease must have been renewed, or the job is stopped.
    deadline: float
    stopped: bool = False


class JobPool:
    """Claims and runs jobs in this process, at most `slots` at once."""

    def __init__(
        self,
        database: Database,
        recorder: TaskRecorder,
        *,
        slots: int,
        lease_seconds: float,
        lease_margin: float,
        poll_seconds: float,
        owner: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.recorder = recorder
        self.slots = slots
        self.lease_seconds = lease_seconds
        self.lease_margin = lease_margin
        self.poll_seconds = poll_seconds
        self.owner = owner or new_owner()
        self._monotonic = monotonic
        self._handlers: dict[str, Handler] = {}
        self._limits: dict[str, ClaimLimit] = {}
        self._running: dict[int, _Running] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        #: Claim rounds started, and the round that last found nothing to do (for `join`).
        self._rounds = 0
        self._idle_round = 0
        self._claiming: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._claim_error_logged = False
        self._closing = False
        self._stopping = asyncio.Event()
        #: Told about every claim (metrics count claims and lease take-overs).
        self.on_claim: Callable[[ClaimedJob], None] | None = None
        #: Told about every job handed back unfinished, with the reason (metrics count them).
        self.on_hand_back: Callable[[ClaimedJob, str], None] | None = None

    async def delete_finished(self, older_than_days: float) -> int:
        """Delete old finished jobs, a thousand at a time (the retention loop's step)."""
        deleted = total = 0
        while deleted := await jobs.delete_finished(
            self.database.engine, older_than_days=older_than_days
        ):
            total += deleted
        if total:
            logger.info(
                "deleted %d background jobs finished over %g days ago", total, older_than_days
            )
        return total

    def register(self, task_type: str, handler: Handler) -> None:
        """Run `handler` for jobs of `task_type`."""
        self._handlers[task_type] = handler

    def limit_claims(self, task_type: str, limit: ClaimLimit) -> None:
        """Ask `limit()` before each claim how many `task_type` jobs it may take (None: no
        limit). The BGG import uses it: while the BGG breaker is not closed, one job per
        poll is its trial and the others stay queued instead of each being rejected."""
        self._limits[task_type] = limit

    @property
    def running(self) -> int:
        """Jobs running in this process now."""
        return len(self._running)

    @property
    def started(self) -> bool:
        """Whether this pool claims jobs."""
        return self._claiming is not None

    def wake(self) -> None:
        """Look for due jobs now (called after a commit that queued some)."""
        self._wake.set()

    def start(self) -> None:
        """Start claiming and renewing (the lifespan or the worker command calls this)."""
        if self._claiming is None:
            self._closing = False
            self._stopping.clear()
            self._claiming = asyncio.create_task(self._claim_loop(), name="job-claims")
            self._renewing = asyncio.create_task(self._renew_loop(), name="job-leases")

    async def join(self) -> None:
        """Wait until no job is due or running here (tests and one-shot callers use this)."""
        if self._claiming is None:
            raise RuntimeError("the job pool is not started")
        # Only a claim round that started after this call counts: one already under way
        # may have looked before the caller's jobs were committed.
        after = self._rounds
        while True:
            self._idle.clear()
            self.wake()
            await self._idle.wait()
            if self._idle_round > after and not self._running:
                return

    async def _claim_loop(self) -> None:
        # Never cancelled mid-claim (drain sets `_closing` and waits): a claim cut short
        # could leave SQLite's write lock held, or jobs leased that nobody runs.
        while not self._closing:
            self._wake.clear()
            self._rounds += 1
            round_ = self._rounds
            claimed = await self._claim()
            if not claimed and not self._running:
                self._idle_round = round_
                self._idle.set()
            if self._stopping_claims():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

    async def _claim(self) -> list[ClaimedJob]:
        free = self.slots - len(self._running)
        if free <= 0:
            return []
        sent = self._monotonic()
        try:
            claimed = await self._claim_within_limits(free)
        except Exception as exc:
            if not self._claim_error_logged:
                logger.warning("cannot claim background jobs: %s", describe(exc))
                self._claim_error_logged = True
            return []
        if self._claim_error_logged:
            logger.info("claiming background jobs again")
            self._claim_error_logged = False
        deadline = sent + self.lease_seconds - self.lease_margin
        for job in claimed:
            task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
            self._running[job.id] = _Running(job, task, deadline)
            task.add_done_callback(functools.partial(self._done, job.id))
            if self.on_claim is not None:
                self.on_claim(job)
            if job.taken_over:
                logger.warning(
                    "job %s (%s): its previous worker's lease expired; attempt %d",
                    job.id,
                    job.task_type,
                    job.attempt,
                )
        return claimed

    async def _claim_within_limits(self, free: int) -> list[ClaimedJob]:
        limits = {task_type: limit() for task_type, limit in self._limits.items()}
        capped = {task_type: cap for task_type, cap in limits.items() if cap is not None}
        claimed: list[ClaimedJob] = []
        # The limited types first: their one job may be the trial that ends an outage.
        for task_type, cap in capped.items():
            claimed += await jobs.claim(
                self.database.engine,
                owner=self.owner,
                limit=min(cap, free - len(claimed)),
                lease_seconds=self.lease_seconds,
                only_types=[task_type],
            )
        claimed += await jobs.claim(
            self.database.engine,
            owner=self.owner,
            limit=free - len(claimed),
            lease_seconds=self.lease_seconds,
            exclude_types=list(capped),
        )
        return claimed

    async def hand_back(self, job: ClaimedJob, *, delay_seconds: float, reason: str) -> bool:
        """Return `job` (running here) to the queue unfinished, due in `delay_seconds`,
        without spending its attempt; False when this pool no longer holds it."""
        handed = await jobs.hand_back(
            self.database.engine,
            owner=self.owner,
            job_id=job.id,
            attempt=job.attempt,
            delay_seconds=delay_seconds,
            reason=reason,
        )
        if handed and self.on_hand_back is not None:
            self.on_hand_back(job, reason)
        return handed

    def _stopping_claims(self) -> bool:
        # A method, not the attribute: drain sets it while the loop awaits.
        return self._closing

    def _done(self, job_id: int, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self._wake.set()  # a slot is free

    async def _run(self, job: ClaimedJob) -> None:
        try:
            if job.attempt > job.max_attempts:
                await self.fail(
                    job,
                    "LeaseExpired",
                    f"its worker stopped {job.attempt - 1} times before finishing it",
                )
                return
            handler = self._handlers.get(job.task_type)
            if handler is None:
                await self.fail(job, "UnknownTaskType", f"no handler for {job.task_type!r}")
                return
            await handler(job)
        except asyncio.CancelledError:
            raise
        except InvalidJobPayload as exc:
            await self.fail(job, "InvalidJobPayload", f"Invalid payload: {exc}", exc)
        except Exception as exc:
            # A bug, not an outage: recorded, so the job ends instead of looping.
            logger.exception("job %s (%s) crashed", job.id, job.task_type)
            await self.fail(job, type(exc).__name__, f"Unexpected error: {exc}", exc)

    async def fail(
        self,
        job: ClaimedJob,
        error_type: str,
        message: str,
        exc: BaseException | None = None,
    ) -> None:
        """End `job` as failed with a failure row (for jobs that cannot run at all)."""
        now = utcnow()
        payload = job.payload if isinstance(job.payload, dict) else {}
        game_id = payload.get("game_id")
        await self.recorder.record(
            TaskRecord(
                task_type=job.task_type,
                game_id=game_id if isinstance(game_id, int) else None,
                outcome="failure",
                attempts=1,
                started_at=now,
                finished_at=now,
                trigger=job.trigger,  # type: ignore[arg-type]
                url=payload.get("url") if isinstance(payload.get("url"), str) else None,
                error_message=message,
                error_type=error_type,
                stack_trace="".join(traceback.format_exception(exc)) if exc else None,
                failure_id=job.failure_id,
                record_id=job.record_id,
                job_id=job.id,
                job_attempt=job.attempt,
            )
        )

    async def _renew_loop(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(interval, self._time_to_deadline())):
                    await self._stopping.wait()
            if not self._stopping.is_set():
                await self.renew_once()

    def _time_to_deadline(self) -> float:
        if not self._running:
            return self.lease_seconds / 3
        soonest = min(entry.deadline for entry in self._running.values())
        return max(0.05, soonest - self._monotonic())

    async def renew_once(self) -> None:
        """Renew every lease held here; stop jobs whose lease was lost or ran out."""
        held = {job_id: entry for job_id, entry in self._running.items() if not entry.stopped}
        if held:
            sent = self._monotonic()
            try:
                kept = await jobs.renew(
                    self.database.engine,
                    owner=self.owner,
                    jobs=[(job_id, entry.job.attempt) for job_id, entry in held.items()],
                    lease_seconds=self.lease_seconds,
                )
            except Exception as exc:
                logger.warning("cannot renew job leases: %s", describe(exc))
            else:
                for job_id, entry in held.items():
                    if job_id in kept:
                        entry.deadline = sent + self.lease_seconds - self.lease_margin
                    elif not entry.task.done():
                        logger.warning(
                            "job %s was taken over by another worker: stopping it", job_id
                        )
                        self._stop(entry)
        now = self._monotonic()
        for job_id, entry in list(self._running.items()):
            if not entry.stopped and now >= entry.deadline:
                logger.warning("job %s: lease not renewed in time: stopping it", job_id)
                self._stop(entry)

    @staticmethod
    def _stop(entry: _Running) -> None:
        entry.stopped = True
        entry.task.cancel()

    async def drain(self, grace: float) -> int:
        """Stop claiming, wait up to `grace` s, hand unfinished jobs back; returns how many."""
        self._closing = True
        self._wake.set()
        if self._claiming is not None:
            await _finish(self._claiming, self.poll_seconds + self.lease_seconds)
        left: list[_Running] = []
        if self._running:
            tasks = [entry.task for entry in self._running.values()]
            await asyncio.wait(tasks, timeout=grace)
            left = [entry for entry in self._running.values() if not entry.task.done()]
            for entry in left:
                entry.task.cancel()
            await asyncio.gather(*(entry.task for entry in left), return_exceptions=True)
        self._stopping.set()
        if self._renewing is not None:
            await _finish(self._renewing, self.lease_seconds)
        handed = 0
        for entry in left:
            if entry.stopped:
                continue  # its lease is gone already
            try:
                if await jobs.hand_back(
                    self.database.engine,
                    owner=self.owner,
                    job_id=entry.job.id,
                    attempt=entry.job.attempt,
                    reason="drain",
                ):
                    handed += 1
                    if self.on_hand_back is not None:
                        self.on_hand_back(entry.job, "drain")
            except Exception as exc:
                # Its lease expires and another worker claims it, as one more attempt.
                logger.warning("could not hand job %s back: %s", entry.job.id, describe(exc))
        if left:
            logger.warning(
                "shutdown: %d background jobs unfinished, %d handed back to the queue",
                len(left),
                handed,
            )
        self._claiming = self._renewing = None
        return len(left)


async def _finish(task: asyncio.Task[None], wait: float) -> None:
    """Let a loop that was asked to stop end its statement; cancel it only if it hangs."""
    done, _ = await asyncio.wait([task], timeout=wait)
    if not done:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
