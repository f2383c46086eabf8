"""`POST /v2/models/{name}[/versions/{v}]/infer` answered by a pure ASGI middleware, not FastAPI's router.

>>> app.add_middleware(FastInferMiddleware, plane=plane)  # create_app adds it  # doctest: +SKIP

FastAPI's routing, dependency solving and the thread-pool hop cost more CPU than a one-row
prediction itself (~0.5 ms of the ~0.8 ms a request took in-process). This middleware, the
innermost of the model server's, answers the two V2 `infer` routes itself:

- the same checks in the same order as the routes of `maestrale.serving.inference`: the bearer token
  (scope `predict`, the app's token source), then the model (404 before the body is read), then the
  body (the body limit still applies: the middleware reads it through `BodyLimitMiddleware`);
- JSON parsed by orjson; a positional model's well-formed request decoded straight to an array
  (`maestrale.serving.fast_infer`); anything else, and the binary tensor extension, through the
  general codec (`parse_body`, `decode_infer`): the same 400 messages;
- the same data plane call (prediction logging, hot reload: the model is read once per request) and
  the same response, encoded by orjson;
- a request of at most `INLINE_BYTES` is decoded and predicted on the event loop: for a small batch
  the hop to a worker thread costs more than the work. A bigger one, or a model whose small requests
  average more than `SLOW_INLINE_S` of CPU, goes to the thread pool so the loop keeps serving;
- errors in the app's envelope (`{"error": ...}`, 401 with `WWW-Authenticate: Bearer`), and the
  route template and `name` left in the scope for `ServingMetricsMiddleware`.

The FastAPI routes stay registered: they document the bodies in OpenAPI and serve any request this
middleware passes on (other methods and paths).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from maestrale.errors import MaestraleError
from maestrale.serving.auth import authorize
from maestrale.serving.dataplane import Caller, DataPlane, parse_body
from maestrale.serving.fast_infer import json_inputs, json_response, positional_decode
from maestrale.serving.inference import v2_infer
from maestrale.serving.repository import ServedModel
from maestrale.serving.v2 import InferenceRequest
from maestrale.serving.v2_binary import parse_binary_request

INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
INLINE_BYTES = 64 * 1024  # ~4,000 JSON numbers: well under a millisecond of decoding
SLOW_INLINE_S = 0.002  # a model whose small answers average more CPU than this goes to the thread pool
JSON = b"application/json"
OCTETS = b"application/octet-stream"
BINARY_HEADER = b"inference-header-content-length"


@dataclass(frozen=True, slots=True)
class _Route:
    """What `ServingMetricsMiddleware` reads from `scope["route"]`: the route template."""

    path: str


ROUTES = (_Route("/v2/models/{name}/infer"), _Route("/v2/models/{name}/versions/{version}/infer"))


class FastInferMiddleware:
    """The V2 `infer` routes over `plane` (see the module docstring); everything else goes to `app`."""

    def __init__(self, app: ASGIApp, plane: DataPlane) -> None:
        self.app, self.plane = app, plane
        # moving average of the CPU seconds of a small request's answer, per model version
        self._cpu_s: dict[tuple[str, int], float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        name, version = match.group(1), match.group(2)
        scope["route"] = ROUTES[version is not None]
        scope["path_params"] = {"name": name} if version is None else {"name": name, "version": version}
        try:
            body, head = await self._infer(scope, receive, name, version)
        except MaestraleError as exc:
            extra = [(b"www-authenticate", b"Bearer")] if exc.status_code == 401 else []
            await _respond(send, exc.status_code, orjson.dumps({"error": exc.message}), JSON, extra)
            return
        except ClientDisconnect:
            return  # nobody to answer
        if head is None:
            await _respond(send, 200, body, JSON)
        else:
            await _respond(send, 200, body, OCTETS, [(BINARY_HEADER, str(head).encode())])

    async def _infer(
        self, scope: Scope, receive: Receive, name: str, version: str | None
    ) -> tuple[bytes, int | None]:
        headers = dict(reversed(scope["headers"]))  # the first of repeated headers, as Starlette reads
        arrived = datetime.now(UTC)
        token = authorize(scope["app"].state.auth, _bearer(headers.get(b"authorization")), "predict")
        entity = headers.get(b"x-maestrale-entity")
        caller = Caller(
            None if entity is None else entity.decode("latin-1"), arrived, token.name if token else None
        )
        served = self.plane.lookup(name, version)  # read once: this request uses this model to its end
        body = await _read_body(receive)
        binary = headers.get(BINARY_HEADER)
        if len(body) > INLINE_BYTES or self._cpu_s.get((served.name, served.version), 0.0) > SLOW_INLINE_S:
            return await run_in_threadpool(self._timed_answer, served, version, body, binary, caller)
        return self._timed_answer(served, version, body, binary, caller)

    def _timed_answer(
        self, served: ServedModel, version: str | None, body: bytes, binary: bytes | None, caller: Caller
    ) -> tuple[bytes, int | None]:
        """`_answer`, its CPU time folded into the model's moving average, on the loop or in a worker.

        CPU time of this thread, not wall time: a wait for the GIL (the prediction logger's flush
        holds it for milliseconds) or a preemption is not the model's cost, and would send a 0.3 ms
        model to the thread pool. Answers in the pool update the average too, so a model that was
        slow for a while (cold caches) comes back to the loop. A prediction does no I/O: artifacts
        are data (skops, native formats), never code that calls out.
        """
        key = (served.name, served.version)
        start = time.thread_time()
        try:
            return self._answer(served, version, body, binary, caller)
        finally:
            if len(body) <= INLINE_BYTES:  # the average is of the requests that may run on the loop
                spent = time.thread_time() - start
                self._cpu_s[key] = 0.9 * self._cpu_s.get(key, 0.0) + 0.1 * spent

    def _answer(
        self, served: ServedModel, version: str | None, body: bytes, binary: bytes | None, caller: Caller
    ) -> tuple[bytes, int | None]:
        """(response body, binary header length or None) of one request: the hot path on `served`, or
        the general one (`v2_infer`, which reads the model served as the FastAPI route does)."""
        if binary is not None:  # the binary tensor extension: its own decoder and encoder
            req = parse_binary_request(body, binary.decode("latin-1"))
            return v2_infer(self.plane, served.name, version, req, caller)
        try:
            parsed = json_inputs(orjson.loads(body))
        except orjson.JSONDecodeError:
            parsed = None  # the general parser says what is wrong, in its words
        if parsed is not None:
            decoded = positional_decode(served, parsed.inputs, parsed.content_type)
            if decoded is not None:
                pred = self.plane.predict(served, decoded, parsed.params, caller)
                return json_response(served, parsed.id, pred), None
        req = parse_body(InferenceRequest, body)
        return v2_infer(self.plane, served.name, version, req, caller)


def _bearer(value: bytes | None) -> str | None:
    """The token of `Authorization: Bearer <token>`, as FastAPI's HTTPBearer reads it (else None)."""
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
