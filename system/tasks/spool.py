"""An append-only spool for task records the database could not take.

Each record is one JSON line, written with `fsync` before `append` returns. The spool is
shared by every worker process: a lock file (`flock`) serialises appends and rewrites, and
the data file is replaced by rename only while the lock is held, so an appender always
writes to the current file. File work runs in a thread: `fsync` must not stall the loop.

A crash mid-append leaves a torn last line. The next append first ends that line, so only
the torn record (never acknowledged) is lost, never the one appended after it; compaction
moves lines that are not records to `<spool>.quarantine` for inspection and logs how many.
Records the database refuses for a reason other than being unavailable go to the same file
(`remove(..., aside=...)`), as they were spooled, so moving a line back into the spool
replays it. The quarantine file is only ever appended to, and written (fsync'd) before the
spool is rewritten without those lines: a crash in between leaves a line in both places,
never in neither.

One replayer at a time across processes: `replaying()` holds a second lock file without
waiting, so appends never queue behind a replay's database writes.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class Spool:
    """JSON-lines records keyed by their `record_id`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._replay_lock_path = path.with_name(path.name + ".replay.lock")
        #: Where compaction puts lines that are not records, and records the database refused.
        self.quarantine_path = path.with_name(path.name + ".quarantine")
        #: Torn lines this process found (ended before an append, or quarantined).
        self.torn_lines = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def replaying(self) -> Iterator[bool]:
        """Whether this process may replay now: False while another one is replaying."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._replay_lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, record: dict[str, Any]) -> None:
        line = _line(record) + "\n"
        with self._locked(), open(self.path, "a+b") as spool:
            if spool.tell() > 0:
                spool.seek(-1, os.SEEK_END)
                if spool.read(1) != b"\n":
                    # A crash cut the last append short: end that line, or this record
                    # would be glued onto it and dropped with it.
                    line = "\n" + line
                    self.torn_lines += 1
                    logger.warning(
                        "spool %s ended in a torn line (a crash mid-append): that record is"
                        " lost and will be quarantined at compaction",
                        self.path,
                    )
            spool.write(line.encode("utf-8"))
            spool.flush()
            os.fsync(spool.fileno())

    def _read(self) -> list[dict[str, Any]]:
        with self._locked():
            return self._read_unlocked()

    def _read_unlocked(self) -> list[dict[str, Any]]:
        return self._parse_unlocked()[0]

    def _parse_unlocked(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The records, and the lines that are not records (torn by a crash mid-write, or
        without a `record_id` to replay them by)."""
        if not self.path.exists():
            return [], []
        records: list[dict[str, Any]] = []
        torn: list[str] = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("record_id"), str):
                records.append(record)
            elif line.strip():
                torn.append(line)
        return records, torn

    def _quarantine(self, lines: list[str]) -> None:
        # Appended, never rewritten: compaction must not lose what was moved aside before.
        with open(self.quarantine_path, "a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())

    def _remove(self, record_ids: set[str], aside: set[str]) -> None:
        with self._locked():
            records, torn = self._parse_unlocked()
            refused = [r for r in records if r["record_id"] in aside]
            kept = [r for r in records if r["record_id"] not in record_ids | aside]
            if not torn and len(kept) == len(records):
                return  # nothing to drop: no rewrite
            if torn or refused:
                self._quarantine(torn + [_line(r) for r in refused])
            if torn:
                self.torn_lines += len(torn)
                logger.warning(
                    "spool %s: %d torn line(s) (records never acknowledged) moved to %s",
                    self.path,
                    len(torn),
                    self.quarantine_path,
                )
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as out:
                out.writelines(_line(record) + "\n" for record in kept)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)

    async def append(self, record: dict[str, Any]) -> None:
        """Add a record durably."""
        await asyncio.to_thread(self._append, record)

    def append_now(self, record: dict[str, Any]) -> None:
        """Add a record from code that cannot await (a task being cancelled at shutdown)."""
        self._append(record)

    async def read(self) -> list[dict[str, Any]]:
        """Every record waiting, oldest first."""
        return await asyncio.to_thread(self._read)

    async def remove(self, record_ids: set[str], aside: set[str] | None = None) -> None:
        """Drop records that reached the database; move the records in `aside` (refused by
        it) and torn lines to `quarantine_path`."""
        await asyncio.to_thread(self._remove, record_ids, aside or set())

    def pending(self) -> int:
        """How many records wait (cheap enough for a metrics scrape)."""
        return _count_lines(self.path)

    def quarantined(self) -> int:
        """How many lines were moved aside, by every process, until an operator clears them."""
        return _count_lines(self.quarantine_path)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as lines:
        return sum(1 for _ in lines)
