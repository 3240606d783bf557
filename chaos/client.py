"""The service as the harness sees it: HTTP calls that never raise, each one timed.

Every call returns what happened (status, latency, body) instead of raising, because a
scenario measures failures as data: a timeout is a result (`status=None, error="timeout"`),
not a crash of the harness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

BGG_BREAKER = "BGG API"
CDN_BREAKER = "Image CDN"


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP exchange with the service."""

    method: str
    path: str
    status: int | None
    latency_ms: float
    started: float  # time.monotonic()
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """2xx."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        """`error.code` of the service's error shape, if any."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return str(code) if code is not None else None
        return None

    def summary(self) -> dict[str, Any]:
        """Plain data for the journal and events."""
        data: dict[str, Any] = {"status": self.status, "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            data["error"] = self.error
        if self.error_code:
            data["code"] = self.error_code
        if "retry-after" in self.headers:
            data["retry_after"] = self.headers["retry-after"]
        return data


class ServiceClient:
    """Async HTTP client for one service URL, with the admin token."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            trust_env=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    @property
    def auth(self) -> dict[str, str]:
        """The admin Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        admin: bool = False,
        time_limit: float | None = None,
        params: dict[str, Any] | None = None,
        fresh: bool = False,
        json: Any = None,
    ) -> Call:
        """One request (`json`: a JSON body); `fresh=True` opens a new connection (to reach
        another worker)."""
        headers = dict(self.auth) if admin else {}
        if fresh:
            headers["Connection"] = "close"
        started = time.monotonic()
        try:
            response = await self._client.request(
                method,
                path,
                headers=headers,
                params=params,
                json=json,
                timeout=time_limit if time_limit is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            return Call(method, path, None, _ms(started), started, error="timeout")
        except httpx.HTTPError as exc:
            return Call(method, path, None, _ms(started), started, error=type(exc).__name__)
        latency = _ms(started)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:500]
        return Call(
            method,
            path,
            response.status_code,
            latency,
            started,
            body,
            {k.lower(): v for k, v in response.headers.items()},
        )

    async def import_game(self, bgg_id: int, *, time_limit: float | None = None) -> Call:
        """`POST /api/admin/games/import/{bgg_id}`."""
        return await self.call(
            "POST", f"/api/admin/games/import/{bgg_id}", admin=True, time_limit=time_limit
        )

    async def bulk_import(self, bgg_ids: list[int], *, time_limit: float | None = None) -> Call:
        """`POST /api/admin/games/import` with `{"bgg_ids": [...]}` (202 with job ids)."""
        return await self.call(
            "POST",
            "/api/admin/games/import",
            admin=True,
            time_limit=time_limit,
            json={"bgg_ids": bgg_ids},
        )

    async def breakers(self, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Every breaker's status by name; empty when the endpoint does not answer."""
        call = await self.call(
            "GET", "/api/admin/monitoring/circuit-breakers", admin=True, time_limit=5, fresh=fresh
        )
        if call.status != 200 or not isinstance(call.body, dict):
            return {}
        listed = call.body.get("circuit_breakers", [])
        return {str(b.get("circuit_breaker")): b for b in listed if isinstance(b, dict)}

    async def breaker(self, name: str = BGG_BREAKER, *, fresh: bool = False) -> dict[str, Any]:
        """One breaker's status (`{}` when unknown or unreachable)."""
        return (await self.breakers(fresh=fresh)).get(name, {})

    async def delete_game(self, game_id: int, *, time_limit: float | None = None) -> Call:
        """`DELETE /api/admin/games/{id}` (204 once the delete is committed)."""
        return await self.call(
            "DELETE", f"/api/admin/games/{game_id}", admin=True, time_limit=time_limit
        )

    async def game(self, game_id: int) -> Call:
        """`GET /api/public/games/{id}`."""
        return await self.call("GET", f"/api/public/games/{game_id}", time_limit=5)

    async def alerts(self) -> Call:
        """`GET /api/admin/monitoring/alerts`: the service's alert rules as it sees them."""
        return await self.call("GET", "/api/admin/monitoring/alerts", admin=True, time_limit=5)

    async def metrics_text(self) -> str | None:
        """`GET /metrics`, the whole text exposition (None when it does not answer 200)."""
        try:
            response = await self._client.get("/metrics", timeout=5)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    async def public_games(self) -> Call:
        """`GET /api/public/games` (a cheap page)."""
        return await self.call("GET", "/api/public/games", params={"limit": 5}, time_limit=5)

    async def health(self) -> Call:
        """`GET /health`."""
        return await self.call("GET", "/health", time_limit=5)

    async def ready(self) -> Call:
        """`GET /health/ready`."""
        return await self.call("GET", "/health/ready", time_limit=5)

    async def background_failures(self, **params: Any) -> Call:
        """`GET /api/admin/monitoring/background-failures` (the monitoring issue)."""
        return await self.call(
            "GET",
            "/api/admin/monitoring/background-failures",
            admin=True,
            time_limit=5,
            params=params or None,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
