"""Admin authentication: `Authorization: Bearer <token>` against `ADMIN_TOKENS`.

No token configured means no admin access at all: there is no default token. The rule is
`refusal`, used by the `require_admin` dependency and by the fast rejection of an import
while the BGG breaker is open (`system/api/admin.py`, `ImportWhileOpen`), so both always
judge a request alike.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from system.api.errors import ApiError
from system.tokens import AdminTokens

# Declared for the OpenAPI security scheme (the docs' "Authorize"); the header is judged by
# `refusal`, which parses it the same way.
_bearer = HTTPBearer(auto_error=False, description="An admin token from ADMIN_TOKENS.")


def refusal(tokens: AdminTokens, authorization: str | None) -> str | None:
    """Why a request with this `Authorization` header value is not an admin's (the 401's
    message), or None when it is."""
    if not tokens.configured:
        return "Admin access is disabled: no ADMIN_TOKENS configured"
    scheme, credentials = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not credentials:
        return "Missing bearer token"
    if not tokens.verify(credentials):
        return "Invalid bearer token"
    return None


async def require_admin(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency on every admin route: 401 + `WWW-Authenticate: Bearer` unless authorised."""
    message = refusal(request.app.state.admin_tokens, request.headers.get("authorization"))
    if message is not None:
        raise ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})
