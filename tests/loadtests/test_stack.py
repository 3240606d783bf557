"""Seeding the catalogue against a small real HTTP server: what is sent, what a failure says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from chaos.service import free_port
from loadtests import names
from loadtests.stack import SEED_FIXTURE_IDS, StackError, seed_catalogue
from tests.support.http_server import serving

TOKEN = "seed-token"
REFUSED = 283
"""An id this server answers 502 for."""


class Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        Handler.seen.append((self.path, self.headers.get("Authorization")))
        refused = self.path == names.IMPORT.replace("{bgg_id}", str(REFUSED))
        self.send_response(502 if refused else 201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    Handler.seen = []
    with serving(Handler) as url:
        yield url


def test_seeding_imports_the_fixture_ids_first_with_the_admin_token(target: str) -> None:
    seed_catalogue(target, TOKEN, 3)
    assert Handler.seen == [
        (names.IMPORT.replace("{bgg_id}", str(bgg_id)), f"Bearer {TOKEN}")
        for bgg_id in SEED_FIXTURE_IDS[:3]
    ]


def test_a_refused_import_stops_the_seeding_with_its_status(target: str) -> None:
    with pytest.raises(StackError, match=rf"importing BGG id {REFUSED} answered HTTP 502$"):
        seed_catalogue(target, TOKEN, len(SEED_FIXTURE_IDS))


def test_a_service_that_does_not_answer_is_named_with_the_reason() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    first = re.escape(closed + names.IMPORT.replace("{bgg_id}", str(SEED_FIXTURE_IDS[0])))
    reason = rf"seeding the catalogue failed: POST {first}: \[Errno \d+\] Connection refused$"
    with pytest.raises(StackError, match=reason):
        seed_catalogue(closed, TOKEN, 1)
