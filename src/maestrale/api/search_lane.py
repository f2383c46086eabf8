"""A fast lane for the API's hottest read, `GET /api/v1/versions`: the search, without FastAPI's routing.

A search is one indexed query that hands stored JSON documents through (`registry.searching`), yet
FastAPI's route matching over ~40 routes and its dependency and query-parameter machinery cost
three times the query. This ASGI middleware answers the well-formed, authorised searches itself:
the same query string, the same token check (a token the cache already knows), the same body.
Anything else -- an unknown, repeated or malformed parameter, a NUL, a token the cache does not
hold, a missing scope, a search the store refuses -- goes on to the FastAPI route, which answers it
(its 4xx envelope, its OpenAPI description), so the lane can only ever be faster, never different.

Installed by `create_app` as the innermost middleware:

>>> app.user_middleware.append(Middleware(SearchLane))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from maestrale.errors import MaestraleError

PATH = "/api/v1/versions"
_BOOLS = {"true": True, "false": False, "1": True, "0": False}
_TEXT = ("filter", "order_by", "page_token")
_FLAGS = ("include_archived", "full")


def search_arguments(query: bytes) -> dict[str, Any] | None:
    """The search's keyword arguments from a query string, or None when FastAPI should judge it.

    >>> search_arguments(b"filter=metrics.nmae+%3C+0.08&limit=10")
    {'filter': 'metrics.nmae < 0.08', 'limit': 10}
    >>> search_arguments(b"limit=0") is None  # out of range: the route's 400 says so
    True
    """
    if len(query) > 16_384:
        return None
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, max_num_fields=8)
    except ValueError:  # more fields than any valid search has
        return None
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out or "\x00" in value or "\x00" in key:
            return None
        if key in _TEXT:
            out[key] = value
        elif key == "limit":
            if not (value.isascii() and value.isdigit() and len(value) <= 4 and 1 <= int(value) <= 1000):
                return None
            out[key] = int(value)
        elif key in _FLAGS:
            flag = _BOOLS.get(value.lower())
            if flag is None:
                return None
            out[key] = flag
        else:
            return None
    return out


def page_body(docs: list[str], token: str | None) -> bytes:
    """A `Page` of versions as JSON, from documents already in JSON (passed through untouched).

    >>> page_body(['{"version":1}'], None)
    b'{"items":[{"version":1}],"next_page_token":null,"total":null}'
    """
    tail = f'],"next_page_token":{json.dumps(token)},"total":null}}'
    return ('{"items":[' + ",".join(docs) + tail).encode()


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class SearchLane:
    """ASGI middleware: answers `GET /api/v1/versions` when it can, else passes the request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None
        self.served = 0  # searches answered here (the rest went on to the route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        body = await self._answer(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        self.served += 1
        # the route's template for the request metrics, as if the router had matched it
        scope["route"] = self._route or self._find_route(scope)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        state = scope["app"].state
        args = search_arguments(scope["query_string"])
        if args is None or not self._allowed(state, scope):
            return None
        try:
            docs, token = await run_in_threadpool(state.store.search_documents, **args)
        except MaestraleError:  # the route raises it again, answered with its 4xx envelope
            return None
        return page_body(docs, token)

    @staticmethod
    def _allowed(state: Any, scope: Scope) -> bool:
        if not state.settings.auth:
            return True
        token = _bearer(scope)
        if token is None:
            return False
        known, info = state.tokens.cached(token)
        return known and info is not None and info.allows("read")

    def _find_route(self, scope: Scope) -> Any:
        for route in scope["app"].routes:
            if getattr(route, "path", None) == PATH and "GET" in getattr(route, "methods", ()):
                self._route = route
                break
        return self._route
