"""A Slack-compatible webhook receiver on loopback: the service's alerts land here.

It accepts `POST /hooks/alerts` with any JSON body and keeps each message with its arrival
time, so a scenario can measure the time to an alert and count fire/resolve messages; an
`on_alert` listener sees each message as it arrives (the notebooks' data generator logs them).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from chaos.fakes import RunningServer, run_in_thread

PATH = "/hooks/alerts"


@dataclass(frozen=True, slots=True)
class Alert:
    """One message the service posted."""

    received: float  # time.monotonic()
    wall: float  # time.time()
    body: Any

    @property
    def text(self) -> str:
        """Everything in the message as one lower-case string (for matching)."""
        return json.dumps(self.body, default=str).lower()

    @property
    def resolved(self) -> bool:
        """Whether it announces a resolution rather than a firing alert."""
        return "resolved" in self.text


class WebhookReceiver:
    """Collects alerts; `url` is what `ALERT_WEBHOOK_URL` should be.

    `port` 0 (the default) listens on a free port; a fixed port lets someone configure a
    service's `ALERT_WEBHOOK_URL` before the harness runs (`--target --webhook-port N`).
    `on_alert` is called with each message as it arrives (on the receiver's thread).
    """

    def __init__(self, port: int = 0, *, on_alert: Callable[[Alert], None] | None = None) -> None:
        self.port = port
        self.on_alert = on_alert
        self._lock = threading.Lock()
        self._alerts: list[Alert] = []
        self._server: RunningServer | None = None

    def start(self) -> WebhookReceiver:
        """Listen on 127.0.0.1:`port`."""
        app = Router(routes=[Route(PATH, self._receive, methods=["POST"])])
        self._server = run_in_thread(app, port=self.port, name="webhook")
        return self

    @property
    def url(self) -> str:
        """The webhook URL."""
        assert self._server is not None, "start() first"
        return self._server.url + PATH

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        alert = Alert(time.monotonic(), time.time(), body)
        with self._lock:
            self._alerts.append(alert)
        if self.on_alert is not None:
            self.on_alert(alert)
        return JSONResponse({"ok": True})

    def alerts(self, since: float = 0.0) -> list[Alert]:
        """Messages received at or after `since` (monotonic)."""
        with self._lock:
            return [a for a in self._alerts if a.received >= since]

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.stop()
            self._server = None
