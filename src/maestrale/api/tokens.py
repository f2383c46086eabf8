"""Token administration endpoints (admin scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from maestrale.api.auth import Admin
from maestrale.limits import MAX_INT32
from maestrale.registry.types import Text128
from maestrale.tokens import create_token, list_tokens, revoke_token

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    """A token to create."""

    name: Text128 = Field(min_length=1, description="Who uses it, e.g. training-worker.")
    scope: str = Field(default="read", max_length=16, description="read, write or admin.")


class TokenOut(BaseModel):
    """A token's public facts; `token` is filled only in the creation response."""

    id: int | None = None
    name: str
    scope: str
    prefix: str
    created_at: datetime | None = None
    revoked: bool = False
    token: str | None = None


@router.post("", response_model=TokenOut, status_code=201, dependencies=[Admin])
def create(request: Request, body: TokenCreate) -> TokenOut:
    """Create a token; its secret is returned once."""
    url = request.app.state.settings.database_url
    secret = create_token(url, body.name, body.scope, created_by=getattr(request.state, "actor", None))
    return TokenOut(name=body.name, scope=body.scope, prefix=secret[:10], token=secret)


@router.get("", response_model=list[TokenOut], dependencies=[Admin])
def list_all(request: Request) -> list[TokenOut]:
    """Every token, without secrets."""
    return [
        TokenOut(
            id=t.id, name=t.name, scope=t.scope, prefix=t.prefix, created_at=t.created_at, revoked=t.revoked
        )
        for t in list_tokens(request.app.state.settings.database_url)
    ]


@router.delete("/{token_id}", status_code=204, dependencies=[Admin])
def revoke(request: Request, token_id: Annotated[int, Path(ge=1, le=MAX_INT32)]) -> Response:
    """Revoke a token."""
    revoke_token(
        request.app.state.settings.database_url, token_id, revoked_by=getattr(request.state, "actor", None)
    )
    return Response(status_code=204)
