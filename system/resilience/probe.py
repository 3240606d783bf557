"""The BGG breaker recovers by itself: a recovery probe (ADR 0001, decision 9).

An open breaker only half-opens when something calls through it. After a BGG outage with no
imports nothing does, so the breaker stayed `open`, the `circuit_breaker_state` gauge stayed
at 2 and the `breaker_open` alert fired for an outage that had already ended.

So every `RECOVERY_CHECK_SECONDS`, when the BGG breaker is open past its reset timeout (or
half-open with nobody holding the trial, as when the worker holding it died), the probe
fetches BGG thing `BGG_RECOVERY_PROBE_ID` once through the breaker's `guard()`: no retries,
no retry budget. The request takes the breaker's one half-open trial, so with Redis one probe
is sent across all workers, and an import arriving meanwhile gets the usual fast 503. An
answer that the game does not exist is an answer: the trial succeeds. Success closes the
breaker (its `closed` transition starts the automatic retry, `system/tasks/recovery.py`);
failure re-opens it for another reset timeout, as any failed trial does.
"""

from __future__ import annotations

import logging

from system.bgg.client import BggClient
from system.bgg.errors import BggError, BggUnavailable
from system.clock import utcnow
from system.config import Settings
from system.periodic import Periodic
from system.resilience.store import HALF_OPEN, OPEN, Snapshot

logger = logging.getLogger(__name__)


def alert_window_problem(settings: Settings) -> str | None:
    """Why `ALERT_BREAKER_OPEN_SECONDS` is too short for the probe (None: it is long enough).

    An outage that ends right after the breaker opened is noticed by the probe at the latest
    `BGG_BREAKER_RESET_TIMEOUT + RECOVERY_CHECK_SECONDS + BGG_REQUEST_TIMEOUT` later; an alert
    window no longer than that can fire for an outage that has already ended.
    """
    bound = (
        settings.bgg_breaker_reset_timeout
        + settings.recovery_check_seconds
        + settings.bgg_request_timeout
    )
    if settings.alert_breaker_open_seconds > bound:
        return None
    return (
        f"ALERT_BREAKER_OPEN_SECONDS ({settings.alert_breaker_open_seconds:g}) is not above "
        f"BGG_BREAKER_RESET_TIMEOUT + RECOVERY_CHECK_SECONDS + BGG_REQUEST_TIMEOUT "
        f"({bound:g}): the breaker_open alert can fire for a BGG outage that has already ended"
    )


class BreakerProbe:
    """Probes the BGG breaker every `check_seconds` (see the module docstring)."""

    def __init__(
        self, *, bgg: BggClient, probe_id: int, check_seconds: float, warning: str | None = None
    ) -> None:
        self.bgg = bgg
        #: The BGG thing fetched; 0: the probe is off.
        self.probe_id = probe_id
        #: Logged at start-up (`alert_window_problem`).
        self.warning = warning
        self._loop = Periodic("bgg recovery probe", check_seconds, self.probe_once)

    @classmethod
    def from_settings(cls, settings: Settings, bgg: BggClient) -> BreakerProbe:
        """The probe `settings` ask for (`BGG_RECOVERY_PROBE_ID`, `RECOVERY_CHECK_SECONDS`)."""
        return cls(
            bgg=bgg,
            probe_id=settings.bgg_recovery_probe_id,
            check_seconds=settings.recovery_check_seconds,
            warning=alert_window_problem(settings),
        )

    def due(self, snap: Snapshot) -> bool:
        """Whether a trial may be taken now: open past the reset timeout, or half-open with
        the trial slot free."""
        if snap.state == OPEN:
            return self.bgg.breaker.seconds_until_half_open(snap) == 0
        return snap.state == HALF_OPEN and snap.trial_free(utcnow().timestamp())

    async def probe_once(self) -> bool:
        """Send the probe if it is due; True when BGG answered it (the breaker closed)."""
        if not self.probe_id:
            return False
        if not self.due(await self.bgg.breaker.snapshot()):
            return False
        try:
            await self.bgg.fetch_once(self.probe_id)
        except BggUnavailable:
            return False  # another caller (or worker) took the trial first: it decides
        except BggError as exc:
            if exc.breaker_failure:
                logger.info("BGG recovery probe failed (%s): the breaker stays open", exc)
                return False
            # "No such game" or "invalid request": BGG answered, which is all the trial asks.
        logger.info("BGG recovery probe: BGG answered, the breaker is closed")
        return True

    def start(self) -> None:
        """Start the periodic probe (the lifespan calls this), after logging the warning."""
        if self.warning is not None:
            logger.warning(self.warning)
        if not self.probe_id:
            logger.info("BGG recovery probe off: the BGG breaker closes with the next import")
            return
        self._loop.start()

    async def aclose(self) -> None:
        """Stop the periodic probe (a probe under way is cancelled: it releases the trial)."""
        await self._loop.aclose()
