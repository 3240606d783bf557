"""Time, in one place, so tests can move it (time-machine patches `datetime.now`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def isoformat_z(value: datetime) -> str:
    """ISO-8601 in UTC with a `Z` suffix, as every timestamp the API returns."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: its zone is unknown")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
