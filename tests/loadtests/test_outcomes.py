"""Which statistics entry an import answer goes to, and what counts as a success."""

from __future__ import annotations

import json

import pytest

from loadtests import names
from loadtests.outcomes import BreakerBelief, classify_import


def body(code: str, **extra: object) -> bytes:
    return json.dumps({"error": {"status": 0, "code": code, "message": "m", **extra}}).encode()


REJECTION = body("bgg_unavailable", breaker="BGG API", state="open", retry_after=4)


@pytest.mark.parametrize("status", [200, 201])
def test_created_and_updated_are_successes(status: int) -> None:
    outcome = classify_import(status, {}, b"{}")
    assert (outcome.name, outcome.ok, outcome.let_through) == (names.IMPORT, True, True)


def test_unknown_game_is_a_success_bgg_answered() -> None:
    outcome = classify_import(404, {}, body("game_not_found"))
    assert outcome.ok and outcome.let_through


def test_open_breaker_rejection_is_a_success_in_its_own_entry() -> None:
    outcome = classify_import(503, {"Retry-After": "4"}, REJECTION)
    assert (outcome.name, outcome.ok, outcome.rejected) == (names.IMPORT_BREAKER_OPEN, True, True)


def test_the_service_says_whether_the_import_reached_bgg_first() -> None:
    """`upstream_attempts` in the 503 body decides, whatever the client believed."""
    opening = body("bgg_unavailable", state="open", retry_after=4, upstream_attempts=2)
    fast = body("bgg_unavailable", state="open", retry_after=4, upstream_attempts=0)
    caught = classify_import(503, {"Retry-After": "4"}, opening, sent_known_open=True)
    assert (caught.name, caught.ok) == (names.IMPORT_BREAKER_OPENING, True)
    turned_away = classify_import(503, {"Retry-After": "4"}, fast, sent_known_open=False)
    assert (turned_away.name, turned_away.ok) == (names.IMPORT_BREAKER_OPEN, True)


def test_rejection_of_an_import_sent_before_the_opening_was_seen() -> None:
    outcome = classify_import(503, {"retry-after": "4"}, REJECTION, sent_known_open=False)
    assert (outcome.name, outcome.ok) == (names.IMPORT_BREAKER_OPENING, True)
    together = classify_import(
        503, {"retry-after": "4"}, REJECTION, sent_known_open=False, separate_opening=False
    )
    assert together.name == names.IMPORT_BREAKER_OPEN


@pytest.mark.parametrize(
    ("status", "headers", "payload", "reason"),
    [
        (503, {}, REJECTION, "without Retry-After"),
        (503, {"Retry-After": "5"}, body("database_unavailable"), "HTTP 503 database_unavailable"),
        (502, {}, body("bgg_transient_error"), "HTTP 502 bgg_transient_error"),
        (504, {}, body("bgg_timeout"), "HTTP 504 bgg_timeout"),
        (401, {}, body("unauthorized"), "HTTP 401 unauthorized"),
        (500, {}, b"<html>", "HTTP 500"),
        (None, {}, b"", "no answer"),
    ],
)
def test_everything_else_is_a_failure(
    status: int | None, headers: dict[str, str], payload: bytes, reason: str
) -> None:
    outcome = classify_import(status, headers, payload)
    assert outcome.name == names.IMPORT
    assert not outcome.ok
    assert reason in outcome.reason


def test_upstream_failures_show_the_breaker_let_the_import_through() -> None:
    assert classify_import(502, {}, body("bgg_transient_error")).let_through
    assert not classify_import(401, {}, body("unauthorized")).let_through
    assert not classify_import(None, {}, b"").let_through


def known_open(belief: BreakerBelief) -> bool:
    return belief.known_open


def test_belief_opens_on_a_rejection_and_closes_on_a_later_import_let_through() -> None:
    belief = BreakerBelief()
    rejected = classify_import(503, {"Retry-After": "1"}, REJECTION)
    failed = classify_import(502, {}, body("bgg_transient_error"))
    assert not known_open(belief)
    belief.observe(rejected, sent_known_open=False)
    assert known_open(belief)
    # the late answer to an import sent before the opening says nothing about now
    belief.observe(failed, sent_known_open=False)
    assert known_open(belief)
    # an import sent while known open was let through: a trial, or closed again
    belief.observe(failed, sent_known_open=True)
    assert not known_open(belief)
