"""An append-only spool for task records the database could not take.

Each record is one JSON line, written with `fsync` before `append` returns. The spool is
shared by every worker process: a lock file (`flock`) serialises appends and rewrites, and
the data file is replaced by rename only while the lock is held, so an appender always
writes to the current file. File work runs in a thread: `fsync` must not stall the loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Spool:
    """JSON-lines records keyed by their `record_id`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._locked(), open(self.path, "a", encoding="utf-8") as spool:
            spool.write(line)
            spool.flush()
            os.fsync(spool.fileno())

    def _read(self) -> list[dict[str, Any]]:
        with self._locked():
            return self._read_unlocked()

    def _read_unlocked(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A torn last line from a crash mid-write: the record was never acknowledged.
                continue
        return records

    def _remove(self, record_ids: set[str]) -> None:
        with self._locked():
            kept = [r for r in self._read_unlocked() if r.get("record_id") not in record_ids]
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
        """Drop records that reached the database."""
        if record_ids:
            await asyncio.to_thread(self._remove, record_ids)

    def pending(self) -> int:
        """How many records wait (cheap enough for a metrics scrape)."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as spool:
            return sum(1 for _ in spool)
