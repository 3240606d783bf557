"""What an import answer counts as: the designed answers are successes, the rest failures.

`classify_import` sorts one answer into a statistics entry; `BreakerBelief` is what one load
generator process knows about the BGG breaker from the answers it has seen, which decides
whether a rejection was the breaker's own response to a request sent while it was open, or
the end of an import caught by the opening. Kept free of Locust so the rules are unit-tested
on their own.

Why the split: when the breaker opens, imports admitted just before it have already made a
request to BGG and may be between attempts; they meet the open breaker and get the same 503,
but their latency includes that failed request, so it is the retry policy's, not the
breaker's. The service says which is which: its 503 body carries `upstream_attempts`, the
requests the import made before the breaker stopped it (0 for the breaker's own fast answer).
Against a service that does not say, the client falls back on what it has seen: an import
*sent* after this process had already seen a rejection (and before it saw the breaker let an
import through again) was admitted while the breaker was open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from loadtests import names


@dataclass(frozen=True, slots=True)
class Outcome:
    """Which statistics entry a response goes to, and whether it is a success."""

    name: str
    ok: bool
    reason: str = ""
    rejected: bool = False
    """The open breaker answered 503 + Retry-After."""
    let_through: bool = False
    """The breaker let the import reach BGG (whatever BGG then answered)."""


def _error(body: bytes) -> Mapping[str, object]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def classify_import(
    status: int | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    sent_known_open: bool = True,
    separate_opening: bool = True,
) -> Outcome:
    """Classify the answer to `POST /api/admin/games/import/{bgg_id}`.

    - 201 created / 200 updated: success.
    - 404 `game_not_found`: success (BGG answered: no such game).
    - 503 with `Retry-After` and `code` `bgg_unavailable`: success, in `import (breaker open)`
      when the import made no upstream request (`upstream_attempts` 0 in the body; without
      that field: when sent while the breaker was known open, `sent_known_open`), else in
      `import (breaker opening)`; with `separate_opening=False` always the former.
    - anything else (502/504 after retries, a 503 without `Retry-After`, 401, a timeout,
      `status` None for no answer): failure.
    """
    if status in (200, 201):
        return Outcome(names.IMPORT, True, let_through=True)
    error = _error(body)
    code = str(error.get("code") or "")
    reached = code == "game_not_found" or (code.startswith("bgg_") and code != "bgg_unavailable")
    if status == 404 and code == "game_not_found":
        return Outcome(names.IMPORT, True, let_through=True)
    if status == 503 and code == "bgg_unavailable":
        if not _header(headers, "retry-after"):
            return Outcome(names.IMPORT, False, "503 bgg_unavailable without Retry-After")
        attempts = error.get("upstream_attempts")
        turned_away = attempts == 0 if isinstance(attempts, int) else sent_known_open
        open_entry = turned_away or not separate_opening
        name = names.IMPORT_BREAKER_OPEN if open_entry else names.IMPORT_BREAKER_OPENING
        return Outcome(name, True, rejected=True)
    if status is None:
        return Outcome(names.IMPORT, False, "no answer")
    return Outcome(names.IMPORT, False, f"HTTP {status} {code}".rstrip(), let_through=reached)


class BreakerBelief:
    """Whether this process has seen the BGG breaker open, from its imports' answers.

    Known open from the first rejection seen, until an import *sent while it was known open*
    is let through to BGG (a half-open trial, or the breaker closed again). An answer to an
    import sent earlier says nothing about the state now and is ignored.
    """

    def __init__(self) -> None:
        self.known_open = False

    def observe(self, outcome: Outcome, *, sent_known_open: bool) -> None:
        """Update the belief with the answer to an import sent when it was `sent_known_open`."""
        if outcome.rejected:
            self.known_open = True
        elif outcome.let_through and sent_known_open:
            self.known_open = False
