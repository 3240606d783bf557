"""Record every task run in the database, or in the spool while the database is down.

Recording never raises into the task. A record that cannot be written goes to the spool
(fsync'd JSON lines) and is replayed, exactly once, at start-up, on the next successful
write, and by a loop that tries every `replay_seconds` while the spool is not empty, so the
records show up as soon as the database answers again even if nothing else is written. The
run row carries the record's UUID under a unique constraint, and a replayed record already
present is skipped. One process replays at a time (`Spool.replaying`). A record the database
refuses for any reason but being unavailable (after one fresh try, in case it lost a race) is
moved aside to the spool's quarantine file and the replay goes on with the next one.

A downloaded thumbnail whose game was deleted or given another URL meanwhile is recorded as
`superseded` (see `write_task_record`), and its file is removed once that is committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Literal

from system.db.database import Database
from system.db.errors import describe, is_conflict, is_unavailable
from system.db.tasks import TaskRecord, Written, write_task_record
from system.periodic import Periodic
from system.tasks.files import remove_thumbnail
from system.tasks.spool import Spool

logger = logging.getLogger(__name__)

#: Where `TaskRecorder.record` put a record.
Recorded = Literal["stored", "spooled", "lost"]


class TaskRecorder:
    """Writes `TaskRecord`s; owns the spool and its replay."""

    def __init__(
        self,
        database: Database,
        spool: Spool,
        *,
        record_failures: bool = True,
        on_record: Callable[[TaskRecord], None] | None = None,
        replay_seconds: float = 5.0,
    ) -> None:
        self.database = database
        self.spool = spool
        self.record_failures = record_failures
        #: Told about every run recorded (to the database or the spool), for metrics.
        self.on_record = on_record
        self._replay_lock = asyncio.Lock()
        self._db_down_logged = False
        self._loop = Periodic("spool replay", replay_seconds, self._replay_if_pending)

    async def record(self, record: TaskRecord) -> Recorded:
        """Store the record somewhere durable and say where. Never raises (except
        cancellation).

        `stored`: committed to the database (visible now); `spooled`: in the spool, visible
        once replayed; `lost`: neither (failure recording is off, or the spool failed too).
        """
        if record.outcome == "failure" and not self.record_failures:
            # RECORD_FAILURES=false exists only so the chaos harness can prove it notices.
            logger.error("failure recording is OFF: dropping %s", record.record_id)
            return "lost"
        try:
            written = await self._write(record)
        except Exception as exc:
            self._notify(record)
            return await self._spool(record, exc)
        self._notify(dataclasses.replace(record, outcome=written.outcome))
        if self._db_down_logged:
            logger.info("database reachable again: replaying spooled task records")
            self._db_down_logged = False
        try:
            pending = self.spool.pending()
        except OSError:
            logger.exception("could not look at the spool %s", self.spool.path)
            return "stored"
        if pending:
            await self.replay()
        return "stored"

    def notify(self, record: TaskRecord) -> None:
        """Tell `on_record` about a run stored by its task's own transaction (a `bgg_import`
        finish writes its record with the game, not through `record`)."""
        self._notify(record)

    def _notify(self, record: TaskRecord) -> None:
        if self.on_record is None:
            return
        try:
            self.on_record(record)
        except Exception:  # a metrics bug must not cost the record
            logger.exception("on_record hook failed for %s", record.record_id)

    async def _write(self, record: TaskRecord) -> Written:
        async with self.database.session() as session:
            written = await write_task_record(session, record)
        if written.orphan is not None:
            # Only now: had the commit failed, the replay would decide again.
            logger.info("thumbnail %s superseded: removing its file", written.orphan)
            await asyncio.to_thread(remove_thumbnail, written.orphan)
        return written

    async def _spool(self, record: TaskRecord, exc: BaseException) -> Recorded:
        if not is_unavailable(exc):
            # Not an outage (a refusal, a bug): saying "unavailable" would send the operator
            # to the wrong place. Still spooled: the replay stores it or sets it aside.
            logger.error(
                "task record %s refused (%s): spooling it to %s",
                record.record_id,
                describe(exc),
                self.spool.path,
                exc_info=exc,
            )
        elif not self._db_down_logged:
            logger.warning(
                "database unavailable (%s): spooling task records to %s",
                type(exc).__name__,
                self.spool.path,
            )
            self._db_down_logged = True
        try:
            await self.spool.append(record.to_json())
        except Exception:
            logger.exception("could not spool task record %s: it is lost", record.record_id)
            return "lost"
        return "spooled"

    async def replay(self) -> int:
        """Move spooled records into the database; returns how many were stored now.

        Returns 0 at once when another process is replaying the same spool.
        """
        async with self._replay_lock:
            with self.spool.replaying() as mine:
                return await self._replay() if mine else 0

    async def _replay(self) -> int:
        try:
            pending = await self.spool.read()
        except Exception:
            logger.exception("could not read the spool %s", self.spool.path)
            return 0
        done: set[str] = set()
        aside: set[str] = set()
        stored = 0
        for data in pending:
            record_id = data["record_id"]
            try:
                stored += await self._replay_one(TaskRecord.from_json(data))
            except Exception as exc:
                if is_unavailable(exc):
                    logger.warning("spool replay paused, database unavailable: %s", describe(exc))
                    break
                # Retrying cannot help this record, and it must not hold back the ones after
                # it: it goes aside for an operator, logged once (it leaves the spool now).
                logger.error(
                    "spool record %s refused (%s): moved to %s",
                    record_id,
                    describe(exc),
                    self.spool.quarantine_path,
                    exc_info=exc,
                )
                aside.add(record_id)
                continue
            done.add(record_id)
        try:
            await self.spool.remove(done, aside)
        except Exception:
            logger.exception("could not compact the spool %s", self.spool.path)
        if stored:
            logger.info("replayed %d spooled task records", stored)
        return stored

    async def _replay_one(self, record: TaskRecord) -> int:
        try:
            return int((await self._write(record)).stored)
        except Exception as exc:
            if is_unavailable(exc) or not is_conflict(exc):
                raise
        # A concurrent write won: another worker replayed this record, or the game (or the
        # failure) it names was deleted between the check and the insert. A fresh transaction
        # decides again: it finds the record stored (nothing to do), or stores it with the
        # deleted game's id NULL, as `ON DELETE SET NULL` would have, so the failure stays
        # visible. A second refusal is not a race: the caller moves the record aside.
        return int((await self._write(record)).stored)

    def start(self) -> None:
        """Start replaying the spool whenever it holds records (the lifespan calls this)."""
        self._loop.start()

    async def _replay_if_pending(self) -> None:
        if self.spool.pending():
            await self.replay()

    async def aclose(self) -> None:
        """Stop the replay loop."""
        await self._loop.aclose()
