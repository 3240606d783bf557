"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from system.api.deps import DatabaseDep
from system.api.errors import DATABASE_RETRY_AFTER, error_body

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers. Touches nothing.")
async def health() -> dict[str, str]:
    """Always 200 while the process runs; load balancers and the chaos harness poll it."""
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: a database round trip.",
    responses={503: {"description": "The database is unreachable or not migrated."}},
)
async def ready(database: DatabaseDep) -> JSONResponse:
    """200 when the database answers at the newest schema, else 503 with the reason."""
    reason = await database.check()
    if reason is not None:
        # The keys load balancers and the harness probe, plus the shared error shape.
        return JSONResponse(
            {
                "status": "unavailable",
                "checks": {"database": "failed"},
                "reason": reason,
                "error": error_body(503, reason, code="database_unavailable"),
            },
            status_code=503,
            headers={"Retry-After": DATABASE_RETRY_AFTER},
        )
    return JSONResponse({"status": "ok", "checks": {"database": "ok"}})
