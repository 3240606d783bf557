"""`/metrics` for Prometheus and the service's own alert states."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from system.api.auth import require_admin
from system.api.deps import ServicesDep
from system.api.schemas import UTCTimestamp
from system.observability.metrics import Metrics

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format).",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Requests by route and status, latency, breakers, BGG attempts, background tasks,
    unresolved failures and the spool: aggregated over every worker."""
    registry: Metrics = request.app.state.metrics
    body, content_type = registry.render()
    return Response(content=body, media_type=content_type)


class AlertStatus(BaseModel):
    """One alert rule as the service last evaluated it."""

    rule: str
    firing: bool
    summary: str
    value: float
    threshold: float
    since: UTCTimestamp | None


@router.get(
    "/api/admin/monitoring/alerts",
    tags=["monitoring"],
    dependencies=[Depends(require_admin)],
    summary="The service's alert rules and whether they fire.",
)
async def alerts(services: ServicesDep) -> list[AlertStatus]:
    """`error_rate`, `breaker_open` and `unresolved_failures`, as of the last check."""
    return [
        AlertStatus(
            rule=state.name,
            firing=state.firing,
            summary=state.summary,
            value=state.value,
            threshold=state.threshold,
            since=state.since,
        )
        for state in services.alerter.states.values()
    ]
