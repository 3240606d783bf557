"""Opaque keyset cursors on `(created_at, id)`, newest first: one way to page every list.

A cursor points just past the last row of a page; the next page is the rows strictly older
than it (`created_at`, then `id` breaking ties). The background failures and the jobs lists
both use it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from system.api.public import MAX_DB_ID


def encode_cursor(created_at: datetime, row_id: int) -> str:
    """An opaque cursor pointing just past the row `(created_at, row_id)`."""
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The `(created_at, id)` a cursor holds; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id_text = raw.split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive")
        # Both checked here, so a forged cursor is a 422, never a query that overflows.
        row_id = int(row_id_text)
        if not 1 <= row_id <= MAX_DB_ID:
            raise ValueError("id out of range")
        return when.astimezone(UTC), row_id
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise ValueError("not a cursor this API gave out") from exc
