"""Admin monitoring: the circuit breakers (failure monitoring comes with its own issue)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends

from system.api.auth import require_admin
from system.api.deps import ServicesDep
from system.api.schemas import BreakerList, BreakerStatus, BreakerTransition
from system.container import BGG_BREAKER, Services
from system.resilience.breaker import API_STATE, AsyncCircuitBreaker

router = APIRouter(
    prefix="/api/admin/monitoring",
    tags=["monitoring"],
    dependencies=[Depends(require_admin)],
)

DESCRIPTIONS = {
    "closed": "Service is healthy and accepting requests",
    "open": "Service is unavailable: requests are rejected at once until the reset timeout",
    "half_open": "Testing recovery: one trial request is let through, the rest are rejected",
}


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _storage(breaker: AsyncCircuitBreaker) -> str:
    return str(getattr(breaker.store, "mode", "memory"))


async def breaker_status(services: Services, breaker: AsyncCircuitBreaker) -> BreakerStatus:
    """One breaker's status, read from its (possibly shared) store."""
    snap = await breaker.snapshot()
    state = API_STATE[snap.state]
    policy = None
    if breaker.name == BGG_BREAKER:
        policy = {
            "retry": services.bgg.policy.describe(),
            "request_timeout": services.bgg.request_timeout,
            "retry_budget_ratio": services.settings.bgg_retry_budget_ratio,
        }
    else:
        policy = {"retry": services.downloader.policy.describe()}
    return BreakerStatus(
        circuit_breaker=breaker.name,
        state=state,
        is_available=state != "open",
        failure_count=snap.failures,
        description=DESCRIPTIONS[state],
        fail_max=breaker.fail_max,
        reset_timeout=breaker.reset_timeout,
        opened_at=_utc(snap.opened_at) if state != "closed" else None,
        seconds_until_half_open=breaker.seconds_until_half_open(snap),
        last_failure_at=_utc(snap.last_failure_at),
        state_storage=_storage(breaker),
        recent_transitions=[
            BreakerTransition(from_state=t.from_state, to_state=t.to_state, at=t.at)
            for t in list(breaker.transitions)[-10:]
        ],
        policy=policy,
    )


@router.get("/circuit-breaker-status", summary="The BGG API circuit breaker.")
async def circuit_breaker_status(services: ServicesDep) -> BreakerStatus:
    """The spec's shape (`circuit_breaker`, `state` closed/open/half_open, `is_available`,
    `failure_count`, `description`) plus thresholds, timings and recent transitions."""
    return await breaker_status(services, services.bgg_breaker)


@router.get("/circuit-breakers", summary="Every circuit breaker of the service.")
async def circuit_breakers(services: ServicesDep) -> BreakerList:
    """Each breaker in the same shape as `circuit-breaker-status`."""
    return BreakerList(
        circuit_breakers=[await breaker_status(services, b) for b in services.breakers.values()]
    )
