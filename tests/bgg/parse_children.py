"""Parsers for `ProcessParser` tests: top-level functions, so a child process can import them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from system.bgg.models import BggGame
from system.bgg.parse_process import parse_in_child

#: A body starting with this names a file: the parser writes its pid there and waits.
HOLD = b"hold:"
#: Long enough for any test to kill the child first; short enough not to hang a broken run.
HOLD_SECONDS = 60.0


def pid_parser(body: bytes, *, bgg_id: int, max_bytes: int) -> BggGame:
    """The pid of the process it ran in, as a game's title."""
    return BggGame(bgg_id=bgg_id, title=str(os.getpid()))


def holding_parser(body: bytes, *, bgg_id: int, max_bytes: int) -> BggGame:
    """For a `HOLD` body: say where it runs, then hold (until killed); else parse."""
    if body.startswith(HOLD):
        Path(body[len(HOLD) :].decode()).write_text(str(os.getpid()))
        threading.Event().wait(HOLD_SECONDS)
    return parse_in_child(body, bgg_id=bgg_id, max_bytes=max_bytes)
