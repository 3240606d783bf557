"""Preflight against a small real HTTP server: what stops a run before any load."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from chaos.service import free_port
from loadtests import names
from loadtests.preflight import PreflightError, available_routes, check_target
from tests.support.http_server import serving

TOKEN = "right-token"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == names.HEALTH:
            self._answer(200, {"status": "ok"})
        elif self.path == names.BREAKER_STATUS:
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            self._answer(200 if ok else 401, {"state": "closed"} if ok else {"error": {}})
        elif self.path == "/openapi.json":
            self._answer(200, {"paths": {names.HEALTH: {}, names.BACKGROUND_FAILURES: {}}})
        elif self.path == "/_control/health":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {})

    def _answer(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    with serving(Handler) as url:
        yield url


def test_a_good_target_passes(target: str) -> None:
    check_target(target, token=TOKEN, needs_token=True, control_url=f"{target}/xmlapi2")
    assert available_routes(target) == frozenset({names.HEALTH, names.BACKGROUND_FAILURES})


def test_wrong_token(target: str) -> None:
    with pytest.raises(PreflightError, match=r"admin token was refused \(HTTP 401"):
        check_target(target, token="wrong", needs_token=True)


def test_missing_token_only_matters_when_needed(target: str) -> None:
    with pytest.raises(PreflightError, match="no admin token: set LOADTEST_ADMIN_TOKEN"):
        check_target(target, token=None, needs_token=True)
    check_target(target, token=None, needs_token=False)


def test_unreachable_target_and_control_api() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    health = re.escape(f"{closed}{names.HEALTH}")
    reason = rf"cannot reach the target: GET {health}: \[Errno \d+\] Connection refused$"
    with pytest.raises(PreflightError, match=reason):
        check_target(closed, token=TOKEN, needs_token=True)
    assert available_routes(closed) is None


def test_unreachable_control_api(target: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}/xmlapi2"
    with pytest.raises(PreflightError, match="control API"):
        check_target(target, token=TOKEN, needs_token=True, control_url=closed)
