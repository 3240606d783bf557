"""The judges of the hypotheses that catch the once-blind mutants (chaos/mutants/catalogue.py):
a commit after the response, Sentry events of `/health` or with secrets, retries in step."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import sentry_sdk

from chaos.scenarios.database_outage import committed_at_answer
from chaos.scenarios.sentry_reports import HEALTH_CHECKS, health_items, missed_health_sampling
from chaos.sentry_ingest import (
    DSN_KEY,
    Item,
    SentryIngest,
    decode_body,
    leaks,
    parse_envelope,
)


def test_a_delete_counts_as_committed_only_if_the_game_was_gone_at_its_204() -> None:
    assert committed_at_answer(204, gone=True)
    # The commit-after-response mutant: 204 while the harness held the lock, game still there.
    assert not committed_at_answer(204, gone=False)
    # No answer, or another one, is no proof of anything: the delete must answer 204.
    assert not committed_at_answer(None, gone=None)
    assert not committed_at_answer(503, gone=None)


# ------------------------------------------------------------------ Sentry


def test_health_items_are_found_by_request_url_or_transaction_name() -> None:
    def item(kind: str, payload: dict[str, Any]) -> Item:
        return Item(0.0, kind, payload, json.dumps(payload))

    found = health_items([
        item("transaction", {"transaction": "/health", "request": {"url": "http://s/health"}}),
        item("transaction", {"transaction": "GET /health/ready"}),
        item("event", {"request": {"url": "http://s/health/ready?x=1"}}),
        item("event", {"request": {"url": "http://s/api/public/games"}}),
        item("transaction", {"transaction": "/healthz"}),
        item("profile", {}),
    ])  # fmt: skip
    assert [i.path for i in found] == ["/health", "/health/ready", "/health/ready"]


def test_the_health_hypothesis_misses_a_sampling_service_with_under_1e_9() -> None:
    assert missed_health_sampling(HEALTH_CHECKS) == pytest.approx(0.9**HEALTH_CHECKS)
    assert missed_health_sampling(HEALTH_CHECKS) < 1e-9


@pytest.mark.parametrize(
    "text",
    [
        "Bearer s3cr3t/tok+en",
        "b'authorization', b'Bearer s3cr3t/tok+en'",
        "?token=s3cr3t%2Ftok%2Ben",
        json.dumps({"vars": "'s3cr3t/tok+en'"}),
    ],
)
def test_a_canary_is_found_in_each_form_a_report_holds(text: str) -> None:
    assert leaks(text, {"token": "s3cr3t/tok+en", "other": "n0t-there"}) == ["token"]


def test_a_canary_in_no_form_is_not_reported() -> None:
    assert leaks("s3cr3t tok en [Filtered]", {"token": "s3cr3t/tok+en"}) == []


def test_an_envelope_is_split_into_its_items_with_and_without_lengths() -> None:
    event = json.dumps({"event_id": "a", "message": "x\ny"}).encode()
    body = (
        b'{"dsn":"http://k@h/1"}\n'
        + json.dumps({"type": "event", "length": len(event)}).encode() + b"\n" + event + b"\n"
        + b'{"type":"transaction"}\n{"transaction":"/health"}\n'
    )  # fmt: skip
    items = parse_envelope(body)
    assert [kind for kind, _ in items] == ["event", "transaction"]
    assert json.loads(items[0][1])["message"] == "x\ny"
    assert decode_body(gzip.compress(body), "gzip") == body
    with pytest.raises(ValueError, match="unknown Content-Encoding"):
        decode_body(body, "zstd")


def test_the_ingest_receives_what_the_real_sdk_sends() -> None:
    ingest = SentryIngest().start()
    try:
        client = sentry_sdk.Client(dsn=ingest.dsn, default_integrations=False)
        client.capture_event({"message": "hello", "level": "error",
                              "request": {"url": "http://svc/health"}})  # fmt: skip
        client.flush(timeout=5)
        client.close()
        (item,) = ingest.items()
        assert item.type == "event" and item.payload is not None
        assert item.payload["message"] == "hello" and item.path == "/health"
        assert DSN_KEY in ingest.dsn and ingest.service_env()["SENTRY_DSN"] == ingest.dsn
        ingest.reset()
        assert ingest.items() == []
    finally:
        ingest.stop()
