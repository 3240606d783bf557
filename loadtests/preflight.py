"""Checks made before any load: the target answers, the admin token is accepted, the fake
BGG's control API answers (outage shape). Each failure is one line for the user, exit code 2.

The calls use httpx's blocking client, also inside Locust's gevent-patched processes (the
hooks' preflight, the admins' route lookup), where its sockets simply yield to the users.
Proxies from the environment are ignored (`trust_env=False`): targets are addressed directly.
"""

from __future__ import annotations

import httpx

from chaos.fakes.control import FakeControl, FakeControlError
from loadtests import names
from loadtests.settings import ADMIN_TOKEN_ENV

NO_ANSWER = (httpx.HTTPError, httpx.InvalidURL)
"""What httpx raises when there is no HTTP answer at all: refused, reset, timed out, bad URL."""


class PreflightError(Exception):
    """The run cannot start; the message is one line for the user."""


def _status(http: httpx.Client, url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return http.get(url, headers=headers).status_code
    except NO_ANSWER as exc:
        raise PreflightError(f"cannot reach the target: GET {url}: {exc}") from None


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
    with httpx.Client(trust_env=False, timeout=timeout) as http:
        health = _status(http, f"{host}{names.HEALTH}")
        if health != 200:
            raise PreflightError(f"the target answered GET {names.HEALTH} with HTTP {health}")
        if needs_token:
            if not token:
                raise PreflightError(
                    f"no admin token: set {ADMIN_TOKEN_ENV} (admins and importers need one), "
                    "or run without them (--admin-weight 0 --importer-weight 0)"
                )
            status = _status(http, f"{host}{names.BREAKER_STATUS}", token)
            if status in (401, 403):
                raise PreflightError(
                    f"the admin token was refused (HTTP {status} from {names.BREAKER_STATUS}): "
                    f"check {ADMIN_TOKEN_ENV} against the service's ADMIN_TOKENS"
                )
            if status != 200:
                raise PreflightError(f"{names.BREAKER_STATUS} answered HTTP {status}")
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
        with httpx.Client(trust_env=False, timeout=timeout) as http:
            answer = http.get(f"{host.rstrip('/')}/openapi.json")
        paths = answer.json().get("paths", {}) if answer.status_code == 200 else None
    except (*NO_ANSWER, ValueError, AttributeError):
        return None
    return frozenset(paths) if isinstance(paths, dict) else None
