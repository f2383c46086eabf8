"""Sign-in and sign-out: a token in a form (never in a URL) opens a cookie session.

>>> # POST /signin  token=mst_...  ->  303 to /, Set-Cookie: maestrale_session=...; HttpOnly; SameSite=Strict
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from maestrale.errors import Forbidden, InvalidInput
from maestrale.tokens import create_session, end_session
from maestrale.ui.web import (
    COOKIE,
    SECURITY_HEADERS,
    SESSION_TTL_S,
    check_action,
    read_form,
    render,
    safe_next,
    set_session_cookie,
)

router = APIRouter()


@router.get("/signin")
def signin_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form; with auth off there is nothing to sign in to."""
    if "token" in request.query_params:
        # a token in a URL ends up in logs, history and Referer headers: refuse, never use it
        raise InvalidInput("a token is never accepted in a URL: paste it into the sign-in form instead")
    if not request.app.state.settings.auth:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "signin.html", next=safe_next(next), error=None)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check the token, open a session, set its cookie and go where the viewer was going."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("sign in from Maestrale's own sign-in page")
    form = await read_form(request)
    target = safe_next(form.get("next"))
    token = form.get("token", "").strip()
    info = request.app.state.tokens.get(token) if 0 < len(token) <= 256 else None
    if info is None:
        message = "enter a token" if not token else "unknown or revoked token: ask an admin for one"
        return render(request, "signin.html", status=401, next=target, error=message)
    secret, _ = create_session(str(request.app.state.settings.database_url), info, SESSION_TTL_S)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    set_session_cookie(request, response, secret)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End the session at once (its cookie stops working even if kept)."""
    form = await read_form(request)
    check_action(request, "read", form.get("csrf"))
    end_session(str(request.app.state.settings.database_url), request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/signin" if request.app.state.settings.auth else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
