"""Admin authentication: `Authorization: Bearer <token>` against `ADMIN_TOKENS`.

No token configured means no admin access at all: there is no default token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from system.api.errors import ApiError
from system.tokens import AdminTokens

_bearer = HTTPBearer(auto_error=False, description="An admin token from ADMIN_TOKENS.")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency on every admin route: 401 + `WWW-Authenticate: Bearer` unless authorised."""
    tokens: AdminTokens = request.app.state.admin_tokens
    if not tokens.configured:
        raise _unauthorized("Admin access is disabled: no ADMIN_TOKENS configured")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("Missing bearer token")
    if not tokens.verify(credentials.credentials):
        raise _unauthorized("Invalid bearer token")
