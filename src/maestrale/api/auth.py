"""Bearer-token authentication with nested scopes (`read` ⊂ `write` ⊂ `admin`).

Token lookups are cached for a few seconds: a revoked token stops working within `CACHE_TTL_S`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import Depends, Request

from maestrale.errors import Forbidden, Unauthorized
from maestrale.tokens import TokenInfo, hash_token, lookup_token

CACHE_TTL_S = 5.0
ANONYMOUS = TokenInfo(0, "anonymous", "admin", "", None, False)  # type: ignore[arg-type]


class TokenCache:
    """Maps token hashes to their info for a short time, so each request costs no SQL round trip."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._entries: dict[str, tuple[float, TokenInfo | None]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> TokenInfo | None:
        """The token's info, or None if unknown/revoked."""
        key = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit and hit[0] > now:
            return hit[1]
        info = lookup_token(self.database_url, token)
        with self._lock:
            if len(self._entries) > 10_000:  # bound memory against token-guessing floods
                self._entries.clear()
            self._entries[key] = (now + CACHE_TTL_S, info)
        return info


def require(scope: str) -> Callable[[Request], TokenInfo]:
    """A dependency that returns the caller's token info or raises 401/403."""

    def dependency(request: Request) -> TokenInfo:
        state = request.app.state
        if not state.settings.auth:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "missing bearer token: send 'Authorization: Bearer <token>' "
                "(create one with `maestrale token create NAME --scope read|write|admin`)"
            )
        info = state.tokens.get(token.strip())
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
