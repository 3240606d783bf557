"""The fault engine and the request log, without sockets."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from chaos.fakes.faults import FaultEngine, FaultRule, RequestInfo, sequence
from chaos.fakes.log import RequestLog

THING = RequestInfo(method="GET", path="/thing", query={"id": "28720", "stats": "1"})
IMAGE = RequestInfo(method="GET", path="/images/pic1.jpg")


def statuses(engine: FaultEngine, n: int, request: RequestInfo = THING) -> list[int | None]:
    out: list[int | None] = []
    for _ in range(n):
        rule = engine.decide(request)
        out.append(None if rule is None else (rule.status or 200))
    return out


def test_no_rules_means_no_fault() -> None:
    assert FaultEngine().decide(THING) is None


def test_first_n_then_pass() -> None:
    engine = FaultEngine([FaultRule(status=503, first_n=2)])
    assert statuses(engine, 4) == [503, 503, None, None]
    assert engine.stats()[0]["fired"] == 2


def test_rules_apply_in_order_and_fall_through_when_exhausted() -> None:
    engine = FaultEngine([FaultRule(status=503, first_n=1), FaultRule(status=429, first_n=1)])
    assert statuses(engine, 3) == [503, 429, None]


def test_sequence_helper_scripts_statuses_and_passes() -> None:
    engine = FaultEngine(sequence([503, 200, 429, None, 502], path="/thing"))
    assert statuses(engine, 6) == [503, 200, 429, 200, 502, None]
    assert [r.name for r in engine.rules()] == [f"seq-{i}" for i in range(5)]
    assert engine.rules()[1].passthrough


def test_sequence_accepts_rules_and_keeps_their_fields() -> None:
    rules = sequence([FaultRule(body="truncated"), 503], match={"id": "1"}, name="s")
    assert rules[0].body == "truncated"
    assert rules[0].match == {"id": "1"}
    assert rules[1].status == 503


def test_path_glob_match_and_method_filters() -> None:
    engine = FaultEngine(
        [
            FaultRule(name="img", path="/images/*", status=404),
            FaultRule(name="brass", path="/thing", match={"id": "2872?"}, status=500),
            FaultRule(name="post", method="post", status=405),
        ]
    )
    assert (rule := engine.decide(IMAGE)) is not None
    assert rule.name == "img"
    assert (rule := engine.decide(THING)) is not None
    assert rule.name == "brass"
    assert engine.decide(RequestInfo("GET", "/thing", {"id": "1"})) is None
    assert engine.decide(RequestInfo("GET", "/thing")) is None
    assert (rule := engine.decide(RequestInfo("POST", "/other"))) is not None
    assert rule.method == "POST"


def test_probability_is_reproducible_by_seed() -> None:
    def pattern(seed: int) -> list[int | None]:
        return statuses(FaultEngine([FaultRule(status=503, probability=0.5)], seed=seed), 200)

    first = pattern(42)
    assert first == pattern(42)
    assert first != pattern(43)
    assert 60 < first.count(503) < 140


def test_probability_streams_are_per_rule() -> None:
    """A rule's draws do not depend on traffic that only another rule saw."""
    lone = FaultEngine([FaultRule(path="/thing", status=503, probability=0.5)], seed=5)
    mixed = FaultEngine(
        [
            FaultRule(path="/thing", status=503, probability=0.5),
            FaultRule(path="/images/*", status=500, probability=0.5),
        ],
        seed=5,
    )
    expected = statuses(lone, 50)
    got = []
    for _ in range(50):
        mixed.decide(IMAGE)
        rule = mixed.decide(THING)
        got.append(None if rule is None else rule.status)
    assert got == expected


def test_reset_replays_the_same_sequence() -> None:
    engine = FaultEngine(seed=9)
    engine.set_rules([FaultRule(status=502, probability=0.3, first_n=10)])
    first = statuses(engine, 60)
    engine.reset()
    engine.set_rules([FaultRule(status=502, probability=0.3, first_n=10)])
    assert statuses(engine, 60) == first
    assert first.count(502) == 10


def test_jitter_is_resolved_into_delay_deterministically() -> None:
    def delays(seed: int) -> list[float]:
        engine = FaultEngine([FaultRule(delay=0.1, jitter=0.05)], seed=seed)
        out = []
        for _ in range(20):
            rule = engine.decide(THING)
            assert rule is not None
            assert rule.jitter == 0
            out.append(rule.delay)
        return out

    first = delays(1)
    assert first == delays(1)
    assert all(0.05 <= d <= 0.15 for d in first)
    assert len(set(first)) > 1


def test_names_are_assigned_and_duplicates_rejected() -> None:
    engine = FaultEngine()
    assert engine.add(FaultRule(status=500)).name == "rule-0"
    assert engine.add(FaultRule(status=500, name="mine")).name == "mine"
    with pytest.raises(ValueError, match="duplicate"):
        engine.add(FaultRule(status=500, name="mine"))
    with pytest.raises(ValueError, match="duplicate"):
        engine.set_rules([FaultRule(name="a"), FaultRule(name="a")])
    assert [r.name for r in engine.rules()] == ["rule-0", "mine"]


def test_changes_notify_subscribers_and_bump_generation() -> None:
    engine = FaultEngine()
    calls: list[int] = []
    engine.subscribe(lambda: calls.append(engine.generation))
    engine.add(FaultRule(hang=True))
    engine.clear()
    engine.set_rules([])
    assert calls == [0, 1, 2]


def test_decide_is_thread_safe() -> None:
    engine = FaultEngine([FaultRule(status=503, first_n=500)])
    fired: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        count = sum(1 for _ in range(400) if engine.decide(THING) is not None)
        with lock:
            fired.append(count)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(fired) == 500
    assert engine.stats()[0]["matched"] == 500


@pytest.mark.parametrize(
    "data",
    [
        {"status": 99},
        {"status": 600},
        {"body": "nonsense"},
        {"body": "html", "text": "x"},
        {"oversize": 10, "body": "empty"},
        {"probability": 1.5},
        {"first_n": 0},
        {"delay": -1},
        {"retry_after": -3},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"X-Ok": "a\r\nb"}},
        {"content_type": "text/html\nx"},
        {"unknown_field": 1},
    ],
)
def test_invalid_rules_are_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultRule.model_validate(data)


def test_rule_json_round_trip() -> None:
    rule = FaultRule(
        name="x", path="/thing", match={"id": "1"}, status=429, retry_after=30, delay=0.01
    )
    assert FaultRule.model_validate_json(rule.model_dump_json()) == rule


def test_request_log_records_counts_and_filters() -> None:
    log = RequestLog()
    first = log.start(THING)
    log.set_rule(first, "boom")
    log.finish(first, status=503, outcome="served", bytes_sent=10)
    second = log.start(IMAGE)
    assert log.counters()["in_flight"] == 1
    log.finish(second, status=200, outcome="served")
    third = log.start(THING)
    log.finish(third, status=None, outcome="disconnected")

    counters = log.counters()
    assert counters["total"] == 3
    assert counters["in_flight"] == 0
    assert counters["by_status"] == {"503": 1, "200": 1}
    assert counters["by_path"] == {"/thing": 2, "/images/pic1.jpg": 1}
    assert counters["by_rule"] == {"boom": 1}
    assert counters["by_outcome"] == {"served": 2, "disconnected": 1}
    assert log.count(path="/thing") == 2
    assert log.count(status=503) == 1
    assert [r.seq for r in log.records(since=1)] == [2, 3]
    assert [r.seq for r in log.records(limit=1)] == [3]
    assert log.records(limit=0) == []
    record = log.records(rule="boom")[0]
    assert record.duration is not None
    assert record.time.endswith("+00:00")

    log.reset()
    assert log.counters()["total"] == 0
    assert log.records() == []


def test_request_log_is_bounded() -> None:
    log = RequestLog(max_records=5)
    for _ in range(8):
        log.finish(log.start(THING), status=200, outcome="served")
    assert [r.seq for r in log.records()] == [4, 5, 6, 7, 8]
    assert log.counters()["total"] == 8
