"""Removing thumbnail files that no game points at any more."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def remove_thumbnail(path: str | Path) -> None:
    """Delete a thumbnail file; one already gone is fine, and a failure is logged, not raised
    (the database change that orphaned it is committed and must stand)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not remove thumbnail %s: %s", path, exc)
