"""A tiny blocking HTTP client on the standard library, for set-up calls outside the statistics.

Used for the service's own endpoints: before a run (preflight, seeding) and for the outage
shape's breaker-state snapshots (the fake BGG's control API goes through
`chaos.fakes.FakeControl`). Not `chaos.client.ServiceClient`: that one is asyncio, and the
shape runs inside Locust's gevent-patched process, where these blocking calls simply yield to
the users. Proxies from the environment are ignored: targets are addressed directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Unreachable(OSError):
    """No HTTP answer at all: refused, reset, timed out, bad host."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer (any status)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    payload: Any = None,
    timeout: float = 5.0,
) -> Answer:
    """One request; any status is returned, no answer raises `Unreachable`."""
    headers = {"Accept": "application/json"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Answer(response.status, response.read(), dict(response.headers.items()))
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.read(), dict(exc.headers.items()))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{method} {url}: {reason}") from None
