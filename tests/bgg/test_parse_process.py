"""BGG answers parsed in a child process (`BGG_PARSE_PROCESSES` > 0): same answers, same
errors as a parse in a thread, and a child that dies is a clear 503 followed by a new child."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from system.bgg.client import BggClient, build_http_client
from system.bgg.errors import (
    BggBadResponse,
    BggError,
    BggRateLimited,
    BggRequestError,
    BggTransientError,
    GameNotFound,
)
from system.bgg.parse_process import ParseProcessLost, ProcessParser
from system.bgg.parser import parse_thing
from system.resilience.breaker import AsyncCircuitBreaker
from system.resilience.retry import RetryPolicy
from tests.bgg.parse_children import HOLD, holding_parser, pid_parser
from tests.conftest import FIXTURES
from tests.support.waiting import eventually

BGG = FIXTURES / "bgg"
BRASS = (BGG / "thing_28720_brass_lancashire_stats.xml").read_bytes()
BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><items><item id="1">&lol2;</item></items>'
)


@pytest.fixture
async def processes() -> AsyncIterator[ProcessParser]:
    parser = ProcessParser(1)
    yield parser
    await parser.aclose()


async def test_the_answer_is_parsed_in_a_child_process() -> None:
    parser = ProcessParser(1, parser=pid_parser)
    try:
        game = await parser.parse(b"", bgg_id=5, max_bytes=100)
        child = int(game.title)
        assert child != os.getpid()
        # It yields the CPU to the worker answering requests.
        assert os.getpriority(os.PRIO_PROCESS, child) > os.getpriority(os.PRIO_PROCESS, 0)
        assert int((await parser.parse(b"", bgg_id=6, max_bytes=100)).title) == child
    finally:
        await parser.aclose()
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(child, 0)


async def test_a_game_is_the_same_as_a_parse_in_this_process(processes: ProcessParser) -> None:
    game = await processes.parse(BRASS, bgg_id=28720, max_bytes=5_000_000)
    assert game == parse_thing(BRASS, bgg_id=28720)


@pytest.mark.parametrize(
    ("body", "bgg_id", "max_bytes", "error"),
    [
        ((BGG / "thing_10000000_nonexistent_empty.xml").read_bytes(), 10_000_000, 10**6,
         GameNotFound),
        ((BGG / "thing_without_id_invalid_item_error.xml").read_bytes(), 1, 10**6,
         BggRequestError),
        ((BGG / "collection_invalid_username_errors.xml").read_bytes(), 1, 10**6,
         BggRequestError),
        ((BGG / "error_429_rate_limit_exceeded.xml").read_bytes(), 1, 10**6, BggRateLimited),
        ((BGG / "collection_202_accepted_message.xml").read_bytes(), 1, 10**6,
         BggTransientError),
        (b"<html><body>maintenance</body></html>", 1, 10**6, BggBadResponse),
        (b"<items><item", 1, 10**6, BggBadResponse),
        (BOMB, 1, 10**6, BggBadResponse),
        (BRASS, 28720, 1000, BggBadResponse),
    ],
)  # fmt: skip
async def test_errors_are_the_parser_errors_unchanged(
    processes: ProcessParser, body: bytes, bgg_id: int, max_bytes: int, error: type[BggError]
) -> None:
    with pytest.raises(error) as in_thread:
        parse_thing(body, bgg_id=bgg_id, max_bytes=max_bytes)
    with pytest.raises(error) as in_child:
        await processes.parse(body, bgg_id=bgg_id, max_bytes=max_bytes)
    assert type(in_child.value) is type(in_thread.value)
    assert vars(in_child.value) == vars(in_thread.value)
    assert in_child.value.__cause__ is None  # not the child's traceback text


def _client(processes: ProcessParser, handler: object) -> BggClient:
    http = build_http_client(
        connect_timeout=1,
        read_timeout=1,
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )
    return BggClient(
        base_url="http://bgg.test/xmlapi2",
        http=http,
        breaker=AsyncCircuitBreaker("BGG API", fail_max=1, reset_timeout=60),
        policy=RetryPolicy(attempts=3, initial_wait=1, max_wait=10, deadline=15),
        request_timeout=5,
        max_id=10_000_000,
        processes=processes,
    )


async def test_a_child_killed_mid_parse_is_a_503_and_the_next_import_works(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.params["id"])
        if request.url.params["id"] == "13":
            return httpx.Response(200, content=HOLD + str(pid_file).encode())
        return httpx.Response(200, content=BRASS)

    processes = ProcessParser(1, parser=holding_parser)
    bgg = _client(processes, handler)
    try:
        import_13 = bgg.fetch_thing(13)
        killer = _kill_when_held(pid_file)
        with pytest.raises(ParseProcessLost) as lost:
            await asyncio.gather(import_13, killer)
        assert type(lost.value) is ParseProcessLost  # answered 503 + Retry-After, a known fault
        assert lost.value.retry_after == 1.0
        assert lost.value.bgg_id == 13
        assert requests == ["13"]  # told at once, not retried
        assert (await bgg.breaker.snapshot()).failures == 0  # BGG answered: not its failure
        game = await bgg.fetch_thing(28720)  # a new child
        assert game.title == "Brass: Lancashire"
    finally:
        await processes.aclose()


async def _kill_when_held(pid_file: Path) -> None:
    text = await eventually(
        lambda: pid_file.read_text() if pid_file.exists() else "", "the child to hold a parse"
    )
    os.kill(int(text), signal.SIGKILL)


async def test_a_parse_after_close_is_refused() -> None:
    processes = ProcessParser(1)
    await processes.aclose()
    with pytest.raises(RuntimeError, match="shut down"):
        await processes.parse(BRASS, bgg_id=28720, max_bytes=5_000_000)
