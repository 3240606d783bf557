"""The control API of a fake, raw and through `FakeControl`."""

from __future__ import annotations

import httpx
import pytest

from chaos.fakes import (
    FakeControl,
    FakeControlError,
    FaultRule,
    RunningServer,
    bgg_base_url,
    sequence,
)


def test_health(http: httpx.Client, bgg: RunningServer) -> None:
    body = http.get(f"{bgg.url}/_control/health").json()
    assert body["status"] == "ok"
    assert body["name"] == "bgg"
    assert body["rules"] == 0


def test_faults_round_trip(http: httpx.Client, bgg: RunningServer) -> None:
    rules = [{"name": "a", "status": 503, "first_n": 2}, {"body": "truncated", "path": "/thing"}]
    response = http.post(f"{bgg.url}/_control/faults", json=rules)
    assert response.status_code == 200
    assert response.json()["rules"] == [
        {"name": "a", "status": 503, "first_n": 2},
        {"name": "rule-1", "body": "truncated", "path": "/thing"},
    ]
    added = http.post(f"{bgg.url}/_control/faults/add", json={"status": 429, "retry_after": 5})
    assert added.status_code == 201
    listed = http.get(f"{bgg.url}/_control/faults").json()
    assert listed["seed"] == 1
    assert [r["rule"]["name"] for r in listed["rules"]] == ["a", "rule-1", "rule-2"]
    assert listed["rules"][0] == {
        "rule": {"name": "a", "status": 503, "first_n": 2},
        "matched": 0,
        "fired": 0,
    }
    assert http.delete(f"{bgg.url}/_control/faults").json() == {"rules": []}
    assert http.get(f"{bgg.url}/_control/faults").json()["rules"] == []


@pytest.mark.parametrize(
    ("method", "path", "payload", "reason"),
    [
        ("POST", "/faults", b"not json", "not valid JSON"),
        ("POST", "/faults", b'{"status": 503}', "JSON list"),
        ("POST", "/faults", b'[{"status": 700}]', "0.status"),
        ("POST", "/faults", b'[{"body": "html", "text": "x"}]', "mutually exclusive"),
        ("POST", "/faults", b'[{"name": "x"}, {"name": "x"}]', "duplicate"),
        ("POST", "/faults/add", b'{"sttaus": 503}', "sttaus"),
        ("POST", "/faults/add", b'{"probability": 2}', "probability"),
        ("POST", "/reset", b'{"seed": "x"}', "seed"),
        ("POST", "/reset", b'{"other": 1}', "seed"),
        ("GET", "/requests?since=abc", None, "since"),
        ("GET", "/requests?limit=-1", None, "limit"),
    ],
)
def test_bad_input_is_422_with_a_reason(
    http: httpx.Client,
    bgg: RunningServer,
    method: str,
    path: str,
    payload: bytes | None,
    reason: str,
) -> None:
    response = http.request(method, f"{bgg.url}/_control{path}", content=payload)
    assert response.status_code == 422
    assert reason in response.json()["detail"]


def test_reset_clears_rules_and_log_and_sets_the_seed(
    http: httpx.Client, bgg: RunningServer
) -> None:
    http.post(f"{bgg.url}/_control/faults/add", json={"status": 500})
    http.get(f"{bgg.url}/thing?id=1")
    assert http.post(f"{bgg.url}/_control/reset", json={"seed": 99}).json()["seed"] == 99
    assert http.get(f"{bgg.url}/_control/requests").json()["count"] == 0
    assert http.get(f"{bgg.url}/thing?id=1").status_code == 200
    assert http.post(f"{bgg.url}/_control/reset").status_code == 200


def test_control_requests_are_not_logged_or_faulted(http: httpx.Client, bgg: RunningServer) -> None:
    http.post(f"{bgg.url}/_control/faults/add", json={"status": 500})
    assert http.get(f"{bgg.url}/_control/health").status_code == 200
    assert http.get(f"{bgg.url}/_control/requests").json()["counters"]["total"] == 0


def test_sync_client(bgg: RunningServer, http: httpx.Client) -> None:
    with FakeControl(bgg_base_url(bgg.url)) as ctl:  # the /xmlapi2 path is ignored
        assert ctl.health()["name"] == "bgg"
        installed = ctl.set_faults(sequence([503, 200], path="/thing"))
        assert [r.name for r in installed] == ["seq-0", "seq-1"]
        assert ctl.add_fault(FaultRule(status=429)).name == "rule-2"
        assert ctl.add_fault({"status": 500, "name": "m"}).name == "m"
        assert [r.name for r in ctl.faults()] == ["seq-0", "seq-1", "rule-2", "m"]
        assert http.get(f"{bgg.url}/thing?id=1").status_code == 503
        assert ctl.fault_stats()[0]["fired"] == 1
        assert ctl.count(path="/thing", status=503) == 1
        assert ctl.requests()[0].status == 503
        with pytest.raises(FakeControlError, match="duplicate") as info:
            ctl.add_fault(name="m")
        assert info.value.status == 422
        with pytest.raises(TypeError):
            ctl.add_fault(FaultRule(status=500), status=503)
        ctl.clear()
        assert ctl.faults() == []
        ctl.reset(seed=4)
        assert ctl.health()["seed"] == 4
        assert ctl.counters()["total"] == 0


def test_client_takes_mappings_and_keywords_and_filters(
    bgg: RunningServer, http: httpx.Client
) -> None:
    with FakeControl(bgg.url) as ctl:
        ctl.set_faults([{"status": 502, "first_n": 1}])
        ctl.add_fault(status=504, first_n=1)
        statuses = [http.get(f"{bgg.url}/thing?id=1").status_code for _ in range(3)]
        assert statuses == [502, 504, 200]
        assert ctl.count(status=200) == 1
        assert [r.status for r in ctl.requests(limit=2)] == [504, 200]
        assert ctl.counters()["by_status"] == {"502": 1, "504": 1, "200": 1}
        assert len(ctl.faults()) == 2
        assert ctl.fault_stats()[1]["fired"] == 1
        assert ctl.health()["rules"] == 2
        with pytest.raises(FakeControlError):
            ctl.add_fault(name="rule-1")  # taken
        ctl.clear()
        ctl.reset()
        assert ctl.count() == 0


def test_client_validates_before_sending(bgg: RunningServer) -> None:
    with FakeControl(bgg.url) as ctl, pytest.raises(ValueError, match="status"):
        ctl.add_fault(status=1000)
