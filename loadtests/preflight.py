"""Checks made before any load: the target answers, the admin token is accepted, the fake
BGG's control API answers (outage shape). Each failure is one line for the user, exit code 2.
"""

from __future__ import annotations

import httpx

from chaos.fakes.control import FakeControl, FakeControlError
from loadtests import names
from loadtests.httpcall import Unreachable, call
from loadtests.settings import ADMIN_TOKEN_ENV


class PreflightError(Exception):
    """The run cannot start; the message is one line for the user."""


def check_target(
    host: str,
    *,
    token: str | None,
    needs_token: bool,
    control_url: str = "",
    timeout: float = 5.0,
) -> None:
    """Raise `PreflightError` unless the target can take the run as configured."""
    host = host.rstrip("/")
    try:
        health = call("GET", f"{host}{names.HEALTH}", timeout=timeout)
    except Unreachable as exc:
        raise PreflightError(f"cannot reach the target: {exc}") from None
    if health.status != 200:
        raise PreflightError(f"the target answered GET {names.HEALTH} with HTTP {health.status}")
    if needs_token:
        if not token:
            raise PreflightError(
                f"no admin token: set {ADMIN_TOKEN_ENV} (admins and importers need one), "
                "or run without them (--admin-weight 0 --importer-weight 0)"
            )
        try:
            status = call("GET", f"{host}{names.BREAKER_STATUS}", token=token, timeout=timeout)
        except Unreachable as exc:
            raise PreflightError(f"cannot reach the target: {exc}") from None
        if status.status in (401, 403):
            raise PreflightError(
                f"the admin token was refused (HTTP {status.status} from {names.BREAKER_STATUS}): "
                f"check {ADMIN_TOKEN_ENV} against the service's ADMIN_TOKENS"
            )
        if status.status != 200:
            raise PreflightError(f"{names.BREAKER_STATUS} answered HTTP {status.status}")
    if control_url:
        check_control(control_url, timeout=timeout)


def check_control(control_url: str, *, timeout: float = 5.0) -> None:
    """Raise `PreflightError` unless the fake BGG's control API answers."""
    try:
        with FakeControl(control_url, timeout=timeout) as control:
            control.health()
    except FakeControlError as exc:
        raise PreflightError(
            f"the fake BGG's control API at {control_url} answered {exc}"
        ) from None
    except (httpx.HTTPError, ValueError) as exc:
        raise PreflightError(f"cannot reach the fake BGG's control API: {exc}") from None


def available_routes(host: str, *, timeout: float = 5.0) -> frozenset[str] | None:
    """The paths the target's OpenAPI document lists, or None when it has none to show."""
    try:
        answer = call("GET", f"{host.rstrip('/')}/openapi.json", timeout=timeout)
        paths = answer.json().get("paths", {}) if answer.status == 200 else None
    except (Unreachable, ValueError, AttributeError):
        return None
    return frozenset(paths) if isinstance(paths, dict) else None
