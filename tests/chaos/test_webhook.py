"""The webhook receiver keeps the service's alert messages and hands each to a listener."""

from __future__ import annotations

import httpx

from chaos.webhook import Alert, WebhookReceiver


def test_a_listener_sees_each_message_as_it_arrives_and_the_receiver_keeps_it() -> None:
    seen: list[Alert] = []
    receiver = WebhookReceiver(on_alert=seen.append).start()
    try:
        body = {"text": "BGG breaker open", "alert": {"rule": "breaker_open", "status": "firing"}}
        response = httpx.post(receiver.url, json=body, trust_env=False, timeout=5)
        assert response.status_code == 200
        assert [alert.body for alert in seen] == [body]
        assert receiver.alerts() == seen
    finally:
        receiver.stop()
