"""Probes for the service's own alerts (`ALERT_WEBHOOK_URL`, the monitoring issue).

The harness points `ALERT_WEBHOOK_URL` at its receiver and sets the breaker-open window
(`ALERT_BREAKER_OPEN_SECONDS`) and check interval itself, so the time to an alert is bounded
by values it chose. A service of the harness's own without working alerting fails these
probes; it never passes them.

With `--target` the harness cannot configure the service: only when the user gave
`--webhook-port N` (saying their ALERT_WEBHOOK_URL is `http://127.0.0.1:N/hooks/alerts`) are
the alerts judged, and failed if none comes. Without it they are reported as skipped, with
why, rather than failed for a webhook nobody could have set.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chaos.context import Context, Skip
from chaos.core import equals, probe
from chaos.promises import HARNESS
from chaos.stats import rounded
from chaos.webhook import Alert


def _about_breaker(alert: Alert) -> bool:
    text = alert.text
    return "bgg api" in text or "breaker" in text


def _breaker_alerts(ctx: Context) -> list[Alert]:
    since = ctx.state.get("fault_started", ctx.state.get("method_start", 0.0))
    return [a for a in ctx.stack.webhook.alerts(since) if _about_breaker(a)]


def _require_alerting(ctx: Context) -> None:
    reason = ctx.stack.options.alerting_unchecked
    if reason is not None:
        raise Skip(reason)


async def _service_says(ctx: Context) -> bool | None:
    """Whether the service itself reports its `breaker_open` alert firing (None: unknown)."""
    call = await ctx.service.alerts()
    if call.status != 200 or not isinstance(call.body, list):
        return None
    rules = {str(r.get("rule")): r for r in call.body if isinstance(r, dict)}
    rule = rules.get("breaker_open")
    return bool(rule.get("firing")) if rule is not None else None


async def alert_fires(ctx: Context) -> dict[str, Any]:
    """Wait for the breaker alert; output whether it came and the time to it."""
    _require_alerting(ctx)
    opened = ctx.state.get("opened_mono")
    if opened is None:
        raise Skip("the breaker never opened, so no alert is due")
    bound = HARNESS.alert_breaker_open + 2 * HARNESS.alert_check_interval + HARNESS.slack + 1
    deadline = opened + bound
    while time.monotonic() < deadline:
        firing = [a for a in _breaker_alerts(ctx) if not a.resolved]
        if firing:
            started = ctx.state.get("fault_started", firing[0].received)
            mttd = firing[0].received - started
            ctx.note(mttd_alert_s=rounded(mttd, 3))
            return {"fired": True, "mttd_alert_s": rounded(mttd, 3), "waited_bound_s": bound}
        await asyncio.sleep(0.05)
    reported = await _service_says(ctx)
    hint = {
        True: f"the service reports breaker_open firing, but nothing reached "
        f"{ctx.stack.webhook.url}: is its ALERT_WEBHOOK_URL set to that?",
        False: "the service does not report breaker_open firing either",
        None: "the service's alert states could not be read",
    }[reported]
    return {"fired": False, "waited_bound_s": bound, "service_reports_firing": reported,
            "hint": hint}  # fmt: skip


async def alert_resolves_once(ctx: Context) -> dict[str, Any]:
    """After recovery: one firing and one resolving message about the breaker."""
    _require_alerting(ctx)
    deadline = time.monotonic() + 2 * HARNESS.alert_check_interval + HARNESS.slack + 1
    while time.monotonic() < deadline:
        if any(a.resolved for a in _breaker_alerts(ctx)):
            break
        await asyncio.sleep(0.05)
    alerts = _breaker_alerts(ctx)
    fired = sum(1 for a in alerts if not a.resolved)
    resolved = sum(1 for a in alerts if a.resolved)
    return {"fired": fired, "resolved": resolved, "once": fired == 1 and resolved == 1}


ALERT_FIRES = probe(
    "alert-fires",
    alert_fires,
    equals(True, "fired"),
    promise=(
        "an alert reaches ALERT_WEBHOOK_URL within ALERT_BREAKER_OPEN_SECONDS "
        f"({HARNESS.alert_breaker_open:g} s, set by the harness) of the breaker opening"
    ),
)
ALERT_RESOLVES = probe(
    "alert-fires-once-resolves-once",
    alert_resolves_once,
    equals(True, "once"),
    promise="the breaker alert is sent once when it fires and once when it resolves",
)
