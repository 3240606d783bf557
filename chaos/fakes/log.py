"""The request log of a fake upstream: every request it received, queryable and resettable.

A record is appended when the request arrives (`outcome="pending"`, so hanging requests are
visible) and completed when the answer has been sent (`"served"`) or the client went away
first (`"disconnected"`). Counters are running totals since the last reset; the record list
keeps the newest `max_records` entries.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal

from chaos.events import utc_now
from chaos.fakes.faults import RequestInfo

Outcome = Literal["pending", "served", "disconnected"]


@dataclass(slots=True)
class RequestRecord:
    """One request as the fake saw it. `duration` is in seconds."""

    seq: int
    time: str  # wall clock, UTC, ISO 8601
    monotonic: float  # time.monotonic() of this process at arrival
    method: str
    path: str  # logical path (see RequestInfo)
    raw_path: str
    query: str
    rule: str | None = None
    status: int | None = None
    duration: float | None = None
    outcome: Outcome = "pending"
    bytes_sent: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _matches(
    record: RequestRecord,
    since: int | None,
    path: str | None,
    status: int | None,
    rule: str | None,
) -> bool:
    return (
        (since is None or record.seq > since)
        and (path is None or record.path == path)
        and (status is None or record.status == status)
        and (rule is None or record.rule == rule)
    )


class RequestLog:
    """Thread-safe log of requests with counters (total, by status, by path, by rule)."""

    def __init__(self, max_records: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._seq = 0
        self._by_status: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()
        self._by_rule: Counter[str] = Counter()
        self._by_outcome: Counter[str] = Counter()
        self._in_flight = 0

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest record (0 if none since reset)."""
        return self._seq

    def start(self, request: RequestInfo) -> RequestRecord:
        now = utc_now()
        with self._lock:
            self._seq += 1
            record = RequestRecord(
                seq=self._seq,
                time=now,
                monotonic=time.monotonic(),
                method=request.method,
                path=request.path,
                raw_path=request.raw_path or request.path,
                query=request.query_string,
            )
            self._records.append(record)
            self._by_path[request.path] += 1
            self._in_flight += 1
        return record

    def set_rule(self, record: RequestRecord, rule: str | None) -> None:
        with self._lock:
            record.rule = rule
            if rule is not None:
                self._by_rule[rule] += 1

    def finish(
        self, record: RequestRecord, *, status: int | None, outcome: Outcome, bytes_sent: int = 0
    ) -> None:
        with self._lock:
            if record.outcome != "pending":
                return
            record.status = status
            record.outcome = outcome
            record.bytes_sent = bytes_sent
            record.duration = time.monotonic() - record.monotonic
            if status is not None:
                self._by_status[str(status)] += 1
            self._by_outcome[outcome] += 1
            self._in_flight -= 1

    def records(
        self,
        *,
        since: int | None = None,
        path: str | None = None,
        status: int | None = None,
        rule: str | None = None,
        limit: int | None = None,
    ) -> list[RequestRecord]:
        """Copies of the matching records, oldest first (`since`: seq strictly after).

        `limit` keeps the newest `limit` of them (0: none).
        """
        with self._lock:
            matching = [r for r in self._records if _matches(r, since, path, status, rule)]
            if limit is not None:
                matching = matching[-limit:] if limit > 0 else []
            return [dataclasses.replace(r) for r in matching]

    def count(
        self,
        *,
        since: int | None = None,
        path: str | None = None,
        status: int | None = None,
        rule: str | None = None,
    ) -> int:
        """How many retained records match."""
        with self._lock:
            return sum(1 for r in self._records if _matches(r, since, path, status, rule))

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._seq,
                "in_flight": self._in_flight,
                "by_status": dict(self._by_status),
                "by_path": dict(self._by_path),
                "by_rule": dict(self._by_rule),
                "by_outcome": dict(self._by_outcome),
            }

    def reset(self) -> None:
        """Forget every record and counter. Requests still in flight finish unlogged."""
        with self._lock:
            for record in self._records:
                if record.outcome == "pending":
                    record.outcome = "disconnected"
            self._records.clear()
            self._seq = 0
            self._in_flight = 0
            for counter in (self._by_status, self._by_path, self._by_rule, self._by_outcome):
                counter.clear()
