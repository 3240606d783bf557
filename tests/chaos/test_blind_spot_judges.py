"""The judges of the hypotheses that catch the once-blind mutants (chaos/mutants/catalogue.py):
a commit after the response, Sentry events of `/health` or with secrets, retries in step."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import sentry_sdk

from chaos.fakes.log import RequestRecord
from chaos.promises import FALSE_ALARM
from chaos.scenarios.bgg_retry_herd import (
    BURST,
    BURSTS,
    MIN_RETRIED,
    false_alarm,
    judge,
    retry_gaps,
)
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


# ------------------------------------------------------------------ retry jitter


def _record(seq: int, bgg_id: int, arrived: float, status: int, duration: float) -> RequestRecord:
    return RequestRecord(seq=seq, time="", monotonic=arrived, method="GET", path="/thing",
                         raw_path="/xmlapi2/thing", query=f"id={bgg_id}&stats=1",
                         status=status, duration=duration, outcome="served")  # fmt: skip


def test_a_retry_gap_runs_from_the_failed_request_s_arrival_to_the_next_arrival() -> None:
    records = [
        _record(1, 7, 10.0, 503, 0.01),
        _record(2, 8, 10.0, 503, 0.02),
        _record(3, 8, 10.3, 200, 0.01),  # id 8: 0.3 s after its failed request arrived
        _record(4, 7, 10.51, 200, 0.01),  # id 7: 0.51 s
        _record(5, 9, 10.6, 200, 0.01),  # no failure: no gap
        _record(6, 5, 10.7, 503, 0.01),  # not one of ours
        _record(7, 5, 10.8, 200, 0.01),
    ]
    gaps = sorted(retry_gaps(records, {7, 8, 9}))
    assert gaps == pytest.approx([0.3, 0.51])


def test_a_late_stamp_of_the_503_s_end_cannot_make_a_fixed_wait_look_early() -> None:
    # The fake stalled 0.2 s after writing the 503 (its end stamped late); the service read
    # the answer at once and retried exactly 0.5 s later: the gap is still not under 0.5 s.
    records = [_record(1, 7, 10.0, 503, 0.21), _record(2, 7, 10.51, 200, 0.01)]
    (gap,) = retry_gaps(records, {7})
    assert not judge([gap] * MIN_RETRIED).spread_out


def test_retries_are_spread_out_only_with_a_gap_under_the_fixed_wait() -> None:
    # No jitter: every gap is the wait plus overhead, never under it.
    assert not judge([0.5 + i / 1000 for i in range(MIN_RETRIED)]).spread_out
    # Jitter: one gap under the wait is enough...
    jittered = [0.6] * (MIN_RETRIED - 1) + [0.31]
    assert judge(jittered).spread_out and judge(jittered).under_wait == 1
    # ...given enough gaps to judge (retries the budget refused have none).
    assert not judge([0.1] * (MIN_RETRIED - 1)).spread_out
    assert judge([0.1] * MIN_RETRIED).to_json()["min_gap_s"] == 0.1


def test_the_false_alarm_bound_is_under_the_harness_s() -> None:
    assert false_alarm(MIN_RETRIED) == pytest.approx(0.5**MIN_RETRIED)
    assert false_alarm(MIN_RETRIED) < FALSE_ALARM
    assert BURSTS * BURST >= MIN_RETRIED
