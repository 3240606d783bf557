"""Every HTTP fault kind, observed by an httpx client over real sockets."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest
from defusedxml import ElementTree
from defusedxml.common import EntitiesForbidden

from chaos.fakes import (
    FakeControl,
    FaultRule,
    RunningServer,
    bgg_base_url,
    create_bgg_app,
    run_in_thread,
    sequence,
)
from tests.support.waiting import eventually, eventually_sync

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bgg"
BRASS = (FIXTURES / "thing_28720_brass_lancashire_stats.xml").read_bytes()


def get_thing(http: httpx.Client, server: RunningServer, bgg_id: int = 28720) -> httpx.Response:
    return http.get(bgg_base_url(server.url) + "/thing", params={"id": bgg_id, "stats": 1})


@pytest.mark.parametrize("status", [500, 502, 503, 504, 401, 403, 404])
def test_error_statuses_come_with_an_html_page(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl, status: int
) -> None:
    bgg_ctl.add_fault(status=status)
    response = get_thing(http, bgg)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{status} " in response.text


def test_429_has_the_real_body_and_retry_after(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(status=429, retry_after=7)
    response = get_thing(http, bgg)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.content == (FIXTURES / "error_429_rate_limit_exceeded.xml").read_bytes()


def test_202_is_the_queued_message(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(status=202)
    response = get_thing(http, bgg)
    assert response.status_code == 202
    assert ElementTree.fromstring(response.content).tag == "message"


def test_truncated_xml(http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl) -> None:
    bgg_ctl.add_fault(body="truncated")
    response = get_thing(http, bgg)
    assert response.status_code == 200
    assert response.content == BRASS[: len(BRASS) // 2]
    with pytest.raises(ElementTree.ParseError):
        ElementTree.fromstring(response.content)


def test_broken_xml(http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl) -> None:
    bgg_ctl.add_fault(body="broken")
    response = get_thing(http, bgg)
    assert response.status_code == 200
    with pytest.raises(ElementTree.ParseError):
        ElementTree.fromstring(response.content)


def test_billion_laughs_is_refused_by_defusedxml(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(body="bomb")
    response = get_thing(http, bgg)
    assert len(response.content) < 2048
    with pytest.raises(EntitiesForbidden):
        ElementTree.fromstring(response.content)


@pytest.mark.parametrize(
    ("kind", "file"),
    [
        ("empty", "thing_10000000_nonexistent_empty.xml"),
        ("error", "thing_without_id_invalid_item_error.xml"),
        ("queued", "collection_202_accepted_message.xml"),
        ("ratelimit", "error_429_rate_limit_exceeded.xml"),
    ],
)
def test_fixture_backed_bodies(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl, kind: str, file: str
) -> None:
    bgg_ctl.add_fault(body=kind)
    response = get_thing(http, bgg)
    assert response.status_code == 200
    assert response.content == (FIXTURES / file).read_bytes()


def test_raw_text_content_type_and_headers(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(
        status=503, text="maintenance", content_type="application/json", headers={"X-Why": "y"}
    )
    response = get_thing(http, bgg)
    assert (response.status_code, response.text) == (503, "maintenance")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-why"] == "y"


def test_content_type_override_keeps_the_normal_body(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(content_type="text/html")
    response = get_thing(http, bgg)
    assert response.headers["content-type"] == "text/html"
    assert response.content == BRASS


def test_chunked_answer_has_no_content_length(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(chunked=True)
    response = get_thing(http, bgg)
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == BRASS


def test_delay(http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl) -> None:
    bgg_ctl.add_fault(delay=0.05, first_n=1)
    delayed = get_thing(http, bgg)
    assert (delayed.status_code, delayed.content) == (200, BRASS)  # late, but whole
    # A delay no test outlives holds the answer; first_n=1 lets the next one through at once
    # (were it delayed too, the client's 5 s timeout would fire).
    bgg_ctl.add_fault(delay=30, first_n=1)
    with pytest.raises(httpx.ReadTimeout):
        http.get(bgg_base_url(bgg.url) + "/thing", params={"id": 28720}, timeout=0.2)
    assert get_thing(http, bgg).status_code == 200
    rules = [r.rule for r in bgg_ctl.requests()]
    assert rules[0] is not None and rules[1] is not None and rules[2] is None


def test_client_timeout_during_delay_is_logged_as_disconnected(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(delay=30)
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"{bgg.url}/thing?id=1", timeout=0.1)
    outcome = eventually_sync(
        lambda: bgg_ctl.requests()[-1].outcome,
        "the fake to see the client go",
        until=lambda o: o != "pending",
    )
    assert outcome == "disconnected"


def test_first_n_and_sequences_over_http(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.set_faults(sequence([503, 503, 200, 429], path="/thing"))
    assert [get_thing(http, bgg).status_code for _ in range(6)] == [503, 503, 200, 429, 200, 200]
    bgg_ctl.set_faults([FaultRule(status=500, first_n=2)])
    assert [get_thing(http, bgg).status_code for _ in range(3)] == [500, 500, 200]


def test_probability_sequence_is_reproducible_by_seed(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    def run(seed: int) -> list[int]:
        bgg_ctl.reset(seed=seed)
        bgg_ctl.add_fault(status=503, probability=0.5)
        return [get_thing(http, bgg).status_code for _ in range(24)]

    first = run(11)
    assert set(first) == {200, 503}
    assert run(11) == first
    assert run(12) != first


def test_match_filter_targets_one_id(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(path="/thing", match={"id": "28720"}, status=500)
    assert get_thing(http, bgg, 28720).status_code == 500
    assert get_thing(http, bgg, 1).status_code == 200


def test_request_log_counts(http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl) -> None:
    bgg_ctl.add_fault(name="two-503", status=503, first_n=2)
    for bgg_id in (1, 2, 3):
        get_thing(http, bgg, bgg_id)
    http.get(f"{bgg.url}/nope")
    assert bgg_ctl.count() == 4
    assert bgg_ctl.count(path="/thing") == 3
    assert bgg_ctl.count(path="/thing", status=503) == 2
    assert bgg_ctl.count(rule="two-503") == 2
    counters = bgg_ctl.counters()
    assert counters["by_status"] == {"503": 2, "200": 1, "404": 1}
    assert counters["by_path"] == {"/thing": 3, "/nope": 1}
    records = bgg_ctl.requests(since=2)
    assert [r.seq for r in records] == [3, 4]
    assert records[0].rule is None
    assert records[0].status == 200
    assert records[0].duration is not None
    assert records[0].bytes_sent > 0
    assert bgg_ctl.requests(path="/thing", status=503)[0].rule == "two-503"


async def test_hang_is_released_when_the_fault_is_cleared(
    bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    # The control calls go to a thread so the hanging request keeps the event loop.
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        await asyncio.to_thread(bgg_ctl.add_fault, hang=True, first_n=1)
        pending = asyncio.create_task(client.get(f"{bgg.url}/xmlapi2/thing?id=28720"))
        await eventually(
            lambda: asyncio.to_thread(bgg_ctl.counters),
            "the request to hang",
            until=lambda c: c["in_flight"] == 1,
        )
        assert not pending.done()
        assert (await asyncio.to_thread(bgg_ctl.requests))[-1].outcome == "pending"
        await asyncio.to_thread(bgg_ctl.clear)
        response = await asyncio.wait_for(pending, 2)
        assert response.status_code == 200
        assert response.content == BRASS


async def test_hang_then_status_once_released(bgg: RunningServer, bgg_ctl: FakeControl) -> None:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        await asyncio.to_thread(bgg_ctl.add_fault, hang=True, status=504)
        pending = asyncio.create_task(client.get(f"{bgg.url}/thing?id=1"))
        await eventually(
            lambda: asyncio.to_thread(bgg_ctl.counters),
            "the request to hang",
            until=lambda c: c["in_flight"] == 1,
        )
        await asyncio.to_thread(bgg_ctl.reset)
        assert (await asyncio.wait_for(pending, 2)).status_code == 504


def test_hang_makes_a_short_client_timeout_fire(
    http: httpx.Client, bgg: RunningServer, bgg_ctl: FakeControl
) -> None:
    bgg_ctl.add_fault(hang=True)
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"{bgg.url}/thing?id=1", timeout=0.1)


def test_hang_is_released_when_the_server_stops() -> None:
    server = run_in_thread(create_bgg_app())
    server.app.engine.add(FaultRule(hang=True))
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            with httpx.Client(timeout=10, trust_env=False) as client:
                outcome.append(client.get(f"{server.url}/thing?id=1").status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    eventually_sync(lambda: server.app.log.counters()["in_flight"], "the request to hang")
    server.stop()
    thread.join(5)  # the client's own timeout is 10 s: it must be the stop that ends it
    assert not thread.is_alive(), "the hanging request outlived the server"
    assert not server.running
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
