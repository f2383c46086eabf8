"""The web UI's request plumbing: who is looking (the session cookie), CSRF checks, and page rendering.

A browser signs in once with a token (`POST /signin`); it then holds a random session secret in an
HttpOnly, SameSite=Strict cookie (`maestrale.tokens.create_session`). A token is never read from a
URL. Every state-changing request must carry the session's CSRF secret (a form field `csrf` or the
`X-CSRF-Token` header that htmx sends) and, when the browser says where it comes from, come from
this origin. With `MAESTRALE_AUTH=false` (the embedded default) each browser gets an anonymous admin
session, so the CSRF rule still holds: a page on another site cannot act on a local server.

>>> viewer = current_viewer(request)  # in a page handler  # doctest: +SKIP
>>> viewer.name, viewer.can("write")  # doctest: +SKIP
('alice', True)
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from maestrale import __version__
from maestrale.errors import Forbidden, Unauthorized
from maestrale.tokens import Session, create_session, lookup_session

COOKIE = "maestrale_session"
#: A browser session lasts a working day; sign in again after it.
SESSION_TTL_S = 12 * 3600
HERE = Path(__file__).parent
# No inline script or style anywhere: page data travels in <script type="application/json">, which
# CSP does not execute. frame-ancestors 'none' stops click-jacking of the action buttons.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show live state and a CSRF secret: never cache them
}


class SignInRequired(Unauthorized):
    """No live session: a page answers with a redirect to the sign-in page, an action with 401."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page, and what they may do."""

    name: str
    scope: str
    csrf: str
    anonymous: bool

    def can(self, scope: str) -> bool:
        """Whether this viewer's scope includes `scope` (read ⊂ predict ⊂ write ⊂ admin)."""
        from maestrale.tokens import SCOPES

        return SCOPES.index(self.scope) >= SCOPES.index(scope)


def _database(request: Request) -> str:
    return str(request.app.state.settings.database_url)


def _auth(request: Request) -> bool:
    return bool(request.app.state.settings.auth)


def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer; raises `SignInRequired` (auth on) or opens an anonymous session (auth off)."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    request.state.started = time.perf_counter()  # Server-Timing: from the handler's first step
    session = lookup_session(_database(request), request.cookies.get(COOKIE, ""))
    if session is not None and session.token is None and _auth(request):
        session = None  # an anonymous session from before auth was turned on is no sign-in
    if session is None:
        if _auth(request):
            raise SignInRequired("sign in with a token at /signin")
        secret, session = create_session(_database(request), None, SESSION_TTL_S)
        request.state.new_session = secret  # render() sets the cookie on the response
    viewer = _viewer(session)
    request.state.viewer = viewer
    return viewer


def _viewer(session: Session) -> Viewer:
    if session.token is None:
        return Viewer("anonymous", "admin", session.csrf, anonymous=True)
    return Viewer(session.token.name, session.token.scope, session.csrf, anonymous=False)


def check_action(request: Request, scope: str, csrf: str | None) -> Viewer:
    """The viewer of a state-changing request, after the origin, CSRF and scope checks (else 401/403)."""
    viewer = current_viewer(request)
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site}): act from Maestrale's pages")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden(f"request from origin {origin!r} refused: act from Maestrale's own pages")
    sent = csrf or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    if not viewer.can(scope):
        raise Forbidden(f"{viewer.name!r} has scope {viewer.scope!r}; this action needs {scope!r}")
    return viewer


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    """The session cookie: HttpOnly (no script reads it), SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        COOKIE, secret, max_age=SESSION_TTL_S, httponly=True, samesite="strict", path="/",
        secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
    )  # fmt: skip


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a typo in a template is an error in the tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from maestrale.ui import formatting

    env.filters.update(formatting.FILTERS)
    env.globals["version"] = __version__
    return env


_env: Any = None


def templates() -> Any:
    """The Jinja2 environment (built once; autoescaping on)."""
    global _env
    if _env is None:
        _env = _environment()
    return _env


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page (or an htmx fragment) with the viewer, its CSRF secret and the security headers."""
    viewer = context.pop("viewer", None) or getattr(request.state, "viewer", None)
    html = (
        templates()
        .get_template(template)
        .render(request=request, viewer=viewer, path=request.url.path, now=datetime.now(UTC), **context)
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    started = getattr(request.state, "started", None)
    if started is not None:  # the browser's devtools and bench/ui.py read the server's share
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    secret = getattr(request.state, "new_session", None)
    if secret:
        set_session_cookie(request, response, secret)
    return response


def page_data(value: Any) -> str:
    """JSON for a `<script type="application/json">` block: `</` escaped so it cannot close the tag."""
    return json.dumps(value, separators=(",", ":"), default=str).replace("</", "<\\/")


def render_error(request: Request, status: int, message: str) -> Response:
    """The error page (or, for an htmx request, a fragment the page shows in its message area)."""
    if status == 401 and request.method == "GET" and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
    if message.startswith("no such route"):
        message = f"no page at {request.url.path}: go back to the fleet"
    template = "error_fragment.html" if "hx-request" in request.headers else "error.html"
    return render(request, template, status=status, status_code=status, message=message)


#: A UI form is a few fields; anything larger is refused before parsing (a spec editor's text fits).
MAX_FORM_BYTES = 256 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each), bounded in size and count."""
    from urllib.parse import parse_qsl

    from maestrale.errors import InvalidInput, PayloadTooLarge

    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput(f"send the form as application/x-www-form-urlencoded, not {kind or 'nothing'!r}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"form larger than {MAX_FORM_BYTES // 1024} KiB: shorten it")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"unreadable form: {exc}") from None
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidInput("the form contains a NUL character: remove it")
    return dict(pairs)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path on this site only (no `//host`, no scheme: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
