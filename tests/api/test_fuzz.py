"""Schemathesis-style fuzzing of the API, on SQLite and on PostgreSQL.

Requests are drawn from the app's own OpenAPI schema: every parameter of the read routes (and
of resolve) gets values of its declared type, values just outside its bounds, huge numbers,
calendar edges in far time zones, forged cursors and hostile text (NUL, controls, LIKE
wildcards, long strings). Whatever the draw, the answer is never a 5xx, every error has the
shared shape, and a 422 names a parameter that was sent.

PostgreSQL is where this matters most: it refuses values SQLite swallows (NUL in text,
integers over 64 bits, years past 9999), so a parameter only fuzzed on SQLite can hide a 500.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from system.db.models import BackgroundTaskFailure, BoardGame
from tests.conftest import ADMIN_TOKEN

#: Routes worth fuzzing: no upstream calls, no background work started.
ROUTES = (
    ("get", "/api/public/games"),
    ("get", "/api/public/games/{game_id}"),
    ("get", "/api/admin/monitoring/background-failures"),
    ("get", "/api/admin/monitoring/jobs"),
    ("post", "/api/admin/monitoring/background-failures/{failure_id}/resolve"),
    ("get", "/api/admin/monitoring/circuit-breaker-status"),
    ("get", "/health"),
)

_HOSTILE_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(["\x00", "a\x00b", "%", "_", "\\", "'", "' OR 1=1 --", "\u202e", "é" * 250]),
    st.text(st.sampled_from("\x00\x01\t\n%_\\'\"é😀a"), min_size=1, max_size=12),
)
_EDGE_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59+00:00",
        "2026-02-30T00:00:00Z",
        "2026-12-06",
        "1970-01-01T00:00:00Z",
    ]
)
_TIMES = st.one_of(
    _EDGE_TIMES,
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(datetime.isoformat),
    st.datetimes().map(lambda d: d.isoformat() + st_offset(d)),
    _HOSTILE_TEXT,
)
_BIG_INTS = st.one_of(
    st.integers(),
    st.sampled_from([2**31, 2**31 - 1, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]),
)


def st_offset(moment: datetime) -> str:
    """A UTC offset made from the datetime itself, so both extremes come up."""
    minutes = (moment.microsecond % (2 * 14 * 60 + 1)) - 14 * 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _cursor_values() -> st.SearchStrategy[str]:
    raw = st.tuples(_TIMES, _BIG_INTS.map(str) | _HOSTILE_TEXT).map(lambda p: f"{p[0]}|{p[1]}")
    encoded = raw.map(lambda r: base64.urlsafe_b64encode(r.encode()).decode().rstrip("="))
    return st.one_of(encoded, _HOSTILE_TEXT)


def _values(name: str, schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Values for one parameter, led by its OpenAPI schema, with invalid ones mixed in."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    (typed,) = options
    kind = typed.get("type")
    if name == "cursor":
        return _cursor_values()
    if typed.get("format") == "date-time":
        return _TIMES
    if kind == "integer":
        low, high = typed.get("minimum", -(2**31)), typed.get("maximum", 2**31 - 1)
        near = st.sampled_from([low - 1, low, high, high + 1])
        return st.one_of(st.integers(low, high), near, _BIG_INTS).map(str) | _HOSTILE_TEXT
    if kind == "boolean":
        return st.sampled_from(["true", "false", "1", "0", "yes", "maybe"]) | _HOSTILE_TEXT
    if "enum" in typed:
        return st.sampled_from([str(v) for v in typed["enum"]]) | _HOSTILE_TEXT
    return _HOSTILE_TEXT


def _requests(schema: dict[str, Any]) -> st.SearchStrategy[tuple[str, str, dict[str, str]]]:
    per_route = []
    for method, path in ROUTES:
        parameters = schema["paths"][path][method].get("parameters", [])
        path_values = {
            p["name"]: _values(p["name"], p["schema"]) for p in parameters if p["in"] == "path"
        }
        query_values = {
            p["name"]: _values(p["name"], p["schema"]) for p in parameters if p["in"] == "query"
        }

        def build(
            path_args: dict[str, str], query: dict[str, str], method: str = method, path: str = path
        ) -> tuple[str, str, dict[str, str]]:
            url = path.format(**{k: quote(v, safe="") for k, v in path_args.items()})
            return method, url, query

        query = st.fixed_dictionaries({}, optional=query_values)
        per_route.append(st.builds(build, st.fixed_dictionaries(path_values), query))
    return st.one_of(per_route)


@pytest.fixture
async def seeded(app: FastAPI) -> FastAPI:
    """A catalogue and failures to page through, with times far apart."""
    async with app.state.database.session() as session:
        session.add_all(BoardGame(bgg_id=i, title=f"Game {i} 100%_off") for i in range(1, 6))
        base = datetime(2026, 1, 1, tzinfo=UTC)
        session.add_all(
            BackgroundTaskFailure(
                task_type="thumbnail_download",
                error_message="e",
                created_at=base - timedelta(days=400 * i),
            )
            for i in range(6)
        )
    return app


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_request_from_the_schema_is_answered_with_a_5xx(
    seeded: FastAPI, client: httpx.AsyncClient, data: st.DataObject
) -> None:
    method, url, query = data.draw(_requests(seeded.openapi()), label="request")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = await client.request(method, url, params=query, headers=headers)
    assert response.status_code < 500, (method, url, query, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["status"] == response.status_code and error["code"] and error["message"]
        if response.status_code == 422:
            sent = set(query) | {"game_id", "failure_id"}
            assert {f["field"] for f in error["fields"]} <= sent, error
