"""Pure ASGI middlewares shared by the REST API and the model server: bounded request bodies, timing.

>>> limit = BodyLimit.from_mb(16, "MAESTRALE_MAX_BODY_MB")
>>> limit.max_bytes
16777216
>>> app.add_middleware(BodyLimitMiddleware, limit=limit, respond=lambda msg: JSONResponse(
...     {"error": msg}, status_code=413))  # doctest: +SKIP

`BodyLimitMiddleware` bounds what a request may make the server hold: a declared `Content-Length`
above the limit is answered 413 before a byte of the body is read, and a chunked body is counted as
`receive()` delivers it and cut off at the limit, so memory stays bounded by the limit whatever the
client sends. The 413 is sent by the middleware itself, in the envelope the app passes as `respond`,
so it is a 413 however the framework treats the exception that stops the app.

Why not Starlette's `RequestBodyLimitMiddleware` (FastAPI's `max_body_size`): its 413 is the plain
text "Content Too Large", in neither app's error envelope, without the limit or the setting that
raises it, and its exception classes are private.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("maestrale.asgi")
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """At most `max_bytes` of request body; `setting` names the variable that raises it.

    >>> BodyLimit.from_mb(0.5, "MAESTRALE_SERVE_MAX_BODY_MB").message(10_000_000)[:60]
    'the request body (10,000,000 bytes) exceeds the limit of 0.5'
    """

    max_bytes: int
    setting: str

    @classmethod
    def from_mb(cls, mb: float, setting: str) -> BodyLimit:
        """A limit of `mb` MiB (a float: settings such as 0.5 are fine)."""
        return cls(int(mb * MIB), setting)

    def message(self, declared: int | None = None) -> str:
        """What a 413 says: the size when it was declared, the limit and the setting that raises it."""
        size = f" ({declared:,} bytes)" if declared is not None else ""
        return (
            f"the request body{size} exceeds the limit of {self.max_bytes / MIB:g} MiB: "
            f"send less per request or raise {self.setting} on the server"
        )


class BodyTooLarge(HTTPException):
    """Raised from `receive()` once a body passes its limit, after the 413 has been sent.

    A Starlette `HTTPException` on purpose: FastAPI's body reader (`fastapi/routing.py`, 0.165)
    re-raises those as they are, where it turns any other exception into a 400 "There was an error
    parsing the body". Whatever the app makes of it, the middleware drops the app's response: the
    client already has the 413.
    """

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class BodyLimitMiddleware:
    """413 for request bodies over `limit` (or over `per_path[path]`, for routes with their own).

    `respond(message)` builds the 413 in the app's error envelope. Requests without a body cost one
    header lookup; a body is counted as it streams, so nothing is buffered here.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: BodyLimit,
        respond: Callable[[str], Response],
        per_path: Mapping[str, BodyLimit] | None = None,
    ) -> None:
        self.app, self.limit, self.respond = app, limit, respond
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            # Answer before reading: the server discards the body it never handed to the app.
            await self.respond(limit.message(declared))(scope, receive, send)
            return
        await _Guard(self.app, limit, self.respond, scope, receive, send).run()


class _Guard:
    """One request under a limit: counts body bytes in `receive`, owns the response once it cut off."""

    def __init__(
        self, app: ASGIApp, limit: BodyLimit, respond: Callable[[str], Response],
        scope: Scope, receive: Receive, send: Send,
    ) -> None:  # fmt: skip
        self.app, self.limit, self.respond = app, limit, respond
        self.scope, self._receive, self._send = scope, receive, send
        self.received = 0
        self.started = False  # the app sent its response start (too late for a 413)
        self.exceeded = False  # the body passed the limit: the app reads no more of it
        self.cut_off = False  # the 413 went out: whatever the app sends next is dropped

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except BodyTooLarge:
            if not self.cut_off:
                raise
            # the 413 is out and the app unwound: nothing to report
            log.info("request to %s cut off at %d bytes", self.scope.get("path"), self.received)

    async def receive(self) -> Message:
        if self.exceeded:
            raise BodyTooLarge(self.limit.message())
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                await self._cut_off()
        return message

    async def _cut_off(self) -> None:
        self.exceeded = True
        message = self.limit.message()
        if not self.started:
            self.cut_off = True
            await self.respond(message)(self.scope, self._receive, self._send)
        # The app gets no more of the body: stop it, whether or not the 413 could be sent.
        raise BodyTooLarge(message)

    async def send(self, message: Message) -> None:
        if self.cut_off:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the HTTP server refuses it before the app runs
    return None


class TimingMiddleware:
    """Pure ASGI middleware that times each HTTP request; subclasses `record` it.

    BaseHTTPMiddleware would cost a task per request. Shared by the API server and the model server.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.record(scope, status, time.perf_counter() - start)

    def record(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        """Count one finished request (`scope["route"]` is the matched route, if any)."""
        raise NotImplementedError
