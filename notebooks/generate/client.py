"""The few admin calls the generator makes, over HTTP like any client of the service."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


class AdminClient:
    """Admin API calls with the bearer token; every call has a timeout."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            trust_env=False,
        )

    def import_game(self, bgg_id: int) -> int:
        """POST the import; the HTTP status (201/200 ok, 502/503/504 upstream trouble)."""
        return self._client.post(f"/api/admin/games/import/{bgg_id}").status_code

    def breakers(self) -> list[dict[str, Any]]:
        """Every breaker's status, with its recent transitions."""
        response = self._client.get("/api/admin/monitoring/circuit-breakers")
        response.raise_for_status()
        breakers: list[dict[str, Any]] = response.json()["circuit_breakers"]
        return breakers

    def failures(self, *, resolved: bool | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Recorded failures, newest first (every page)."""
        params: dict[str, Any] = {"limit": limit}
        if resolved is not None:
            params["resolved"] = "true" if resolved else "false"
        found: list[dict[str, Any]] = []
        while True:
            response = self._client.get("/api/admin/monitoring/background-failures", params=params)
            response.raise_for_status()
            body = response.json()
            found.extend(body["failures"])
            if not body.get("next_cursor"):
                return found
            params["cursor"] = body["next_cursor"]

    def resolve(self, failure_id: int) -> None:
        """Mark a failure resolved."""
        url = f"/api/admin/monitoring/background-failures/{failure_id}/resolve"
        self._client.post(url).raise_for_status()

    def retry(self, failure_id: int) -> int:
        """Re-run a failed task now; the HTTP status."""
        url = f"/api/admin/monitoring/background-failures/{failure_id}/retry"
        return self._client.post(url).status_code

    def task_runs(self) -> dict[str, float]:
        """`background_task_runs_total` from /metrics, summed per trigger."""
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(self._client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "background_task_runs_total":
                    trigger = sample.labels["trigger"]
                    totals[trigger] = totals.get(trigger, 0.0) + sample.value
        return totals

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
