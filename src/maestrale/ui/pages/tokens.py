"""The tokens page (`/tokens`, admin scope): list, create (the secret shown once), revoke (confirmed).

The same functions as `maestrale token ...` and `/api/v1/tokens` (`maestrale.tokens`), with the
signed-in admin recorded as `created_by` / `revoked_by` for the audit trail. A new token's secret is
rendered in the response to the POST only, never put in a URL, and cannot be shown again.
Revoking a token also ends every browser session opened with it.

>>> # POST /tokens  name=training-worker scope=write csrf=...  ->  200, the secret once, with a copy hint
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from maestrale.errors import Forbidden, InvalidInput
from maestrale.limits import MAX_INT32
from maestrale.tokens import SCOPES, create_token, list_tokens, revoke_token
from maestrale.ui.web import SECURITY_HEADERS, Viewer, check_action, current_viewer, read_form, render

router = APIRouter()


def _admin(request: Request) -> Viewer:
    viewer = current_viewer(request)
    if not viewer.can("admin"):
        raise Forbidden(f"the tokens page is for admins; {viewer.name!r} has scope {viewer.scope!r}")
    return viewer


def _page(request: Request, viewer: Viewer, status: int = 200, **context: object) -> HTMLResponse:
    url = str(request.app.state.settings.database_url)
    tokens = sorted(list_tokens(url), key=lambda t: (t.revoked, -t.id))
    context = {"created": None, "confirm": None, "error": None, **context}
    return render(
        request, "tokens.html", status=status, viewer=viewer, tokens=tokens, scopes=SCOPES, **context
    )


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, revoke: int | None = Query(None, ge=1, le=MAX_INT32)) -> HTMLResponse:
    """Every token (never a secret); `?revoke=ID` asks to confirm that token's revocation."""
    viewer = _admin(request)
    confirm = None
    if revoke is not None:
        confirm = next(
            (t for t in list_tokens(str(request.app.state.settings.database_url)) if t.id == revoke), None
        )
        if confirm is None or confirm.revoked:
            raise InvalidInput(f"token {revoke} is unknown or already revoked: pick one from the list")
    return _page(request, viewer, confirm=confirm)


@router.post("/tokens", response_class=HTMLResponse)
async def create(request: Request) -> HTMLResponse:
    """Create a token and show its secret once (in this response only)."""
    form = await read_form(request)
    viewer = check_action(request, "admin", form.get("csrf"))
    name, scope = form.get("name", "").strip(), form.get("scope", "read")
    if scope not in SCOPES:
        raise InvalidInput(f"scope {scope[:20]!r}: choose one of {', '.join(SCOPES)}")
    if not name or len(name) > 128 or not name.isprintable():
        raise InvalidInput("give the token a name of 1-128 printable characters, e.g. training-worker")
    secret = create_token(str(request.app.state.settings.database_url), name, scope, created_by=viewer.name)
    return _page(request, viewer, created={"name": name, "scope": scope, "secret": secret})


@router.post("/tokens/{token_id}/revoke")
async def revoke(request: Request, token_id: int) -> Response:
    """Revoke a token (the form carries `confirm=yes` from the confirmation box); its sessions end."""
    form = await read_form(request)
    viewer = check_action(request, "admin", form.get("csrf"))
    if not 1 <= token_id <= MAX_INT32:
        raise InvalidInput(f"token id {token_id} is out of range")
    if form.get("confirm") != "yes":
        raise InvalidInput("confirm the revocation: use the Revoke button of the confirmation box")
    revoke_token(str(request.app.state.settings.database_url), token_id, revoked_by=viewer.name)
    return RedirectResponse(
        f"/tokens?done=token+{token_id}+revoked", status_code=303, headers=SECURITY_HEADERS
    )
