"""Bearer-token authentication with nested scopes (`read` ⊂ `write` ⊂ `admin`).

Token lookups are cached for a few seconds: a revoked token stops working within `CACHE_TTL_S`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from maestrale.errors import Forbidden, Unauthorized
from maestrale.tokens import CACHE_TTL_S, TokenCache, TokenInfo  # noqa: F401  (shared with `serve`)

ANONYMOUS = TokenInfo(0, "anonymous", "admin", "", None, False)  # type: ignore[arg-type]
# The OpenAPI security scheme; auto_error=False: a missing token gets Maestrale's 401, not FastAPI's.
BEARER = HTTPBearer(auto_error=False)


def require(scope: str) -> Callable[..., Awaitable[TokenInfo]]:
    """A dependency that returns the caller's token info or raises 401/403."""

    # async: a cached token (every request but one per token per CACHE_TTL_S) is checked on the
    # event loop; a sync dependency would cost a thread-pool round trip on every request, more
    # than the lookup itself. Only a cache miss goes to a thread, for its SQL query.
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)
    ) -> TokenInfo:
        state = request.app.state
        if not state.settings.auth:
            return ANONYMOUS
        token = credentials.credentials.strip() if credentials is not None else ""
        if not token:
            raise Unauthorized(
                "missing bearer token: send 'Authorization: Bearer <token>' "
                "(create one with `maestrale token create NAME --scope read|write|admin`)"
            )
        known, info = state.tokens.cached(token)
        if not known:
            info = await run_in_threadpool(state.tokens.get, token)
        if info is None:
            raise Unauthorized("unknown or revoked token; create a new one with `maestrale token create`")
        if not info.allows(scope):
            raise Forbidden(f"token {info.name!r} has scope {info.scope!r}; this operation needs {scope!r}")
        request.state.actor = info.name
        return info

    return dependency


Read = Depends(require("read"))
Write = Depends(require("write"))
Admin = Depends(require("admin"))
