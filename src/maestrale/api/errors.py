"""One error envelope for every failure of the REST API: `{"error": {"code": …, "message": …}}`.

>>> app = FastAPI(dependencies=[Depends(reject_nul)])  # doctest: +SKIP
>>> install_error_handlers(app)  # doctest: +SKIP

Maestrale's own errors carry their status and code; FastAPI's request validation, a stray pydantic
`ValidationError` raised inside a handler and Starlette's HTTP errors (404 unknown route, 405, the
body-parse 400) become 4xx in the same envelope; anything else is a 500 `internal` whose message is
only a request id, with the traceback logged under that id.

The 500s of endpoints are answered by `UnexpectedErrors`, the innermost middleware, not by a
Starlette handler for `Exception`: that one re-raises after responding, and uvicorn then drops the
client's keep-alive connection, so its next request fails with a connection reset. The handler
remains for failures inside other middleware.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maestrale.errors import InvalidInput, MaestraleError

log = logging.getLogger("maestrale.api")
#: Codes of Starlette's HTTP errors, the same as Maestrale's errors of that status where one exists,
#: so the remote client raises the same classes (`maestrale.errors.error_from_code`).
HTTP_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}
MAX_LISTED_ERRORS = 10


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> JSONResponse:
    """The envelope every error of the API is sent in (`fields`: typed details, e.g. both digests)."""
    body = {"code": code, "message": message, **(fields or {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def describe_errors(errors: Sequence[Any]) -> str:
    """Pydantic errors as one line: `body.version: Input should be less than or equal to 2147483647; …`."""
    parts = []
    for err in errors[:MAX_LISTED_ERRORS]:
        where = ".".join(str(x) for x in err.get("loc", ()))
        # our validators raise ValueError with a full sentence; pydantic prefixes it with "Value error, "
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    more = f" (+{len(errors) - MAX_LISTED_ERRORS} more)" if len(errors) > MAX_LISTED_ERRORS else ""
    return "invalid request: " + "; ".join(parts) + more


def request_id(request: Request) -> str:
    """The id a middleware gave this request, else a new one (it ties a 500 to its log line)."""
    return str(getattr(request.state, "request_id", None) or uuid.uuid4().hex[:16])


async def reject_nul(request: Request) -> None:
    """An app-wide dependency: a NUL character in the path or query is a 400 (PostgreSQL cannot
    compare text with one, so it would otherwise fail deep inside a query).

    async: it does no I/O, and a sync dependency costs every request a thread-pool round trip."""
    query = request.query_params.multi_items()
    if "\x00" in request.scope["path"] or any("\x00" in k or "\x00" in v for k, v in query):
        raise InvalidInput("the request path or query contains a NUL character (%00): remove it")


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> Response:
    """The JSON envelope, or the web UI's error page for a browser asking for a page (not /api/)."""
    render = getattr(request.app.state, "html_errors", None)
    browser = "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers
    if render is not None and browser and not request.url.path.startswith("/api/"):
        response: Response = render(request, status, message)
        for key, value in (headers or {}).items():
            response.headers.setdefault(key, value)
        return response
    return error_response(status, code, message, headers=headers, fields=fields)


async def _maestrale_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MaestraleError)
    return _respond(request, exc.status_code, exc.code, exc.message, fields=exc.fields())


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _respond(request, 400, "invalid", describe_errors(exc.errors()))


async def _stray_validation(request: Request, exc: Exception) -> Response:
    # a model built inside a handler from client data (e.g. a spec) that did not validate
    assert isinstance(exc, ValidationError)
    return _respond(request, 400, "invalid", describe_errors(exc.errors(include_url=False)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(
        exc.status_code, "internal" if exc.status_code >= 500 else f"http_{exc.status_code}"
    )
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route: see /docs or /openapi.json for the API"
    elif exc.status_code == 405:
        message = f"method not allowed here; allowed: {(exc.headers or {}).get('Allow', 'see /openapi.json')}"
    return _respond(request, exc.status_code, code, message, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    log.error("unexpected error %s on %s %s", rid, request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        "internal",
        f"internal error (request id {rid}); the server log has the details under that id",
        headers={"X-Request-ID": rid},
    )


class UnexpectedErrors:
    """ASGI middleware: an exception no handler took becomes the 500 envelope, and the connection lives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # a streamed body failed half-way: nothing valid can be sent any more
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception an endpoint can raise to the envelope (see the module docstring)."""
    app.add_exception_handler(MaestraleError, _maestrale_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _stray_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # innermost (appended, not add_middleware's outermost): middleware such as the metrics see the
    # 500 like any other response
    app.user_middleware.append(Middleware(UnexpectedErrors))
    # the outermost safety net, for an exception raised by a middleware itself
    app.add_exception_handler(Exception, _unexpected)
