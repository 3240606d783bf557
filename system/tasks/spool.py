"""An append-only spool for task records the database could not take.

Each record is one JSON line, written with `fsync` before `append` returns. The spool is
shared by every worker process: a lock file (`flock`) serialises appends and rewrites, and
the data file is replaced by rename only while the lock is held, so an appender always
writes to the current file. File work runs in a thread: `fsync` must not stall the loop.

A crash mid-append leaves a torn last line. The next append first ends that line, so only
the torn record (never acknowledged) is lost, never the one appended after it; compaction
moves lines that do not parse to `<spool>.torn` for inspection and logs how many.

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
        #: Where compaction puts lines that do not parse.
        self.quarantine_path = path.with_name(path.name + ".torn")
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
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
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
        """The records, and the lines that are not records (torn by a crash mid-write)."""
        if not self.path.exists():
            return [], []
        records: list[dict[str, Any]] = []
        torn: list[str] = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif line.strip():
                torn.append(line)
        return records, torn

    def _quarantine(self, lines: list[str]) -> None:
        with open(self.quarantine_path, "a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())
        self.torn_lines += len(lines)
        logger.warning(
            "spool %s: %d torn line(s) (records never acknowledged) moved to %s",
            self.path,
            len(lines),
            self.quarantine_path,
        )

    def _remove(self, record_ids: set[str]) -> None:
        with self._locked():
            records, torn = self._parse_unlocked()
            kept = [r for r in records if r.get("record_id") not in record_ids]
            if not torn and len(kept) == len(records):
                return  # nothing to drop: no rewrite
            if torn:
                self._quarantine(torn)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as out:
                for record in kept:
                    out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
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

    async def remove(self, record_ids: set[str]) -> None:
        """Drop records that reached the database, and move torn lines aside."""
        await asyncio.to_thread(self._remove, record_ids)

    def pending(self) -> int:
        """How many records wait (cheap enough for a metrics scrape)."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as spool:
            return sum(1 for _ in spool)
