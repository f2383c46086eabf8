"""The model server: Open Inference Protocol (V2) over HTTP, hot reload on promotion, prediction logging.

>>> from maestrale.serving import create_app
>>> app = create_app(load_settings(), ["pv-nrel-50@champion"])  # loads now  # doctest: +SKIP
>>> uvicorn.run(app, port=8000)   # or `maestrale serve pv-nrel-50@champion --port 8000`  # doctest: +SKIP

Endpoints (errors are `{"error": "..."}`: 400 for a client's mistake, 404 for an unknown model or
a version not served, never a 500 for bad input):

- `GET /v2/health/live` → `{"live": true}`; `GET /v2/health/ready` → `{"ready": true}` (400 and
  `false` until every model is loaded; V2 says 4xx for "not ready");
- `GET /v2` → server metadata `{name, version, extensions}`;
- `GET /v2/models/{name}[/versions/{v}]` → model metadata (inputs from the registered input schema);
  `GET …/ready` → `{"name", "ready"}`;
- `POST /v2/models/{name}[/versions/{v}]/infer` → V2 inference (see `maestrale.serving.v2`);
- `POST /models/{name}/predict` with `{"records": [{feature: value, …}], "parameters": {…}}` →
  `{"model_name", "model_version", "predictions": […]}`: plain JSON for callers without a V2 client;
- `GET /metrics` → Prometheus.

Bodies over `MAESTRALE_SERVE_MAX_BODY_MB` (default 32) get a 413 before they are read whole
(`maestrale.asgi`). With auth on (`MAESTRALE_SERVE_AUTH`, see `maestrale.serving.auth`), metadata needs
a `read` token and inference a `predict` token; health and `/metrics` stay open. Each logged
prediction batch names the token that sent it (`logged_by`).

Every response names the version that actually served it (`model_version`), so a client sees the
swap. Prediction logging reads `entity` from a `parameters.entity`, an `X-Maestrale-Entity` header,
an `entity` input/record key (per row), else the model name; `target_time` from a `target_time`
input/record key or `parameters.target_time` (one ISO 8601 time, or one per row), else the request
time; `issued_at` from `parameters.issued_at` (one ISO 8601 time: a forecast computed earlier, or a
backfill), else the request time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from maestrale import __version__
from maestrale.asgi import BodyLimit, BodyLimitMiddleware
from maestrale.config import Settings, load_settings
from maestrale.errors import ConfigError, MaestraleError, NotFound
from maestrale.serving.auth import require, resolve_auth, token_source
from maestrale.serving.dataplane import DataPlane, describe_errors
from maestrale.serving.fast_route import FastInferMiddleware
from maestrale.serving.inference import inference_router
from maestrale.serving.logger import PredictionLogger
from maestrale.serving.metrics import ServingMetrics, ServingMetricsMiddleware
from maestrale.serving.reload import ReloadWatcher
from maestrale.serving.repository import ModelRepository, ServedModel
from maestrale.serving.v2 import MetadataModelResponse, MetadataServerResponse, datatype_of


def create_app(
    settings: Settings | None,
    refs: list[str],
    *,
    log_predictions: bool = True,
    reload_poll_s: float | None = 30.0,
    log_capacity: int = 10_000,
    log_batch_size: int = 1_000,
    log_interval_s: float = 1.0,
    trusted_types: list[str] | None = None,
    auth: bool | None = None,
    host: str = "127.0.0.1",
    grpc_port: int | None = None,
) -> FastAPI:
    """Load `refs` (`NAME@ALIAS` follows the alias, `NAME:V` is pinned) and build the V2 server.

    `trusted_types` lists the custom classes (`module.Class`) a skops artifact may contain, as in
    `Registry.load(..., trusted_types=...)`. `auth` requires bearer tokens (None: decided by
    `settings.serve_auth` for a server listening on `host`; pass the host you bind, as
    `maestrale serve` does, or `auth=True`). Models and the token source load here, so a bad
    reference or a missing token file fails at once;
    the bus consumer, the alias poll (every `reload_poll_s` s; None: events only) and the
    prediction logger run between the app's lifespan startup and shutdown (uvicorn's default), and
    the shutdown publishes what the logger holds. `grpc_port` also serves V2 over gRPC on `host`
    (`maestrale.serving.grpc_server`, needs `maestrale[grpc]`), started and stopped with the lifespan,
    over the same data plane and token source.
    """
    from maestrale.bus.transport import get_transport
    from maestrale.registry.client import Registry

    settings = settings or load_settings()
    auth = resolve_auth(settings.serve_auth, host) if auth is None else auth
    tokens = token_source(settings) if auth else None  # fails now when there is no token source
    metrics = ServingMetrics()
    started = False

    def on_swap(served: ServedModel) -> None:
        metrics.model_version.labels(served.name).set(served.version)
        if started:
            metrics.reloads.labels(served.name).inc()

    repo = ModelRepository(
        Registry(settings=settings, actor="serving"), refs, on_swap=on_swap,
        on_reload_error=lambda name, _exc: metrics.reload_failures.labels(name).inc(),
        trusted_types=trusted_types,
    )  # fmt: skip
    started = True
    transport = get_transport(settings.broker_url, settings.bus_namespace)
    logger = None
    if log_predictions:
        logger = PredictionLogger(
            transport, capacity=log_capacity, batch_size=log_batch_size, interval=log_interval_s,
            metrics=metrics, settings=settings,
        )  # fmt: skip
    watcher = ReloadWatcher(repo, transport, poll_s=reload_poll_s)

    plane = DataPlane(_version_lookup(repo), repo.ready, logger=logger)
    grpc = None
    if grpc_port is not None:
        grpc = _grpc_starter(
            plane, tokens, host, grpc_port, int(settings.serve_max_body_mb * 1024 * 1024), metrics,
            frozenset(repo.names()),
        )  # fmt: skip
    app = FastAPI(
        title="Maestrale model server", version=__version__, lifespan=_lifespan(repo, watcher, logger, grpc),
        description="Open Inference Protocol (V2) for models of the Maestrale registry.",
    )  # fmt: skip
    app.state.repository, app.state.metrics = repo, metrics
    app.state.logger, app.state.watcher, app.state.auth = logger, watcher, tokens
    # the innermost: the V2 infer routes without FastAPI's router (fast_route), inside the body limit
    # and the metrics, which wrap it and count its answers as the routes' own
    app.add_middleware(FastInferMiddleware, plane=plane)
    # added before the metrics, so they wrap it and count its 413s
    limit = BodyLimit.from_mb(settings.serve_max_body_mb, "MAESTRALE_SERVE_MAX_BODY_MB")
    app.add_middleware(
        BodyLimitMiddleware, limit=limit, respond=lambda msg: JSONResponse({"error": msg}, status_code=413)
    )
    app.add_middleware(ServingMetricsMiddleware, metrics=metrics, served=set(repo.names()))
    _install_error_handlers(app)
    app.state.dataplane = plane
    app.include_router(_health_and_metadata(plane, metrics, Depends(require("read"))))
    app.include_router(inference_router(plane, Depends(require("predict"))))
    _document_bodies(app, repo)
    return app


def _grpc_starter(
    plane: DataPlane, tokens: Any, host: str, port: int, max_bytes: int, metrics: ServingMetrics,
    served: frozenset[str],
) -> Callable[[], Any]:  # fmt: skip
    """What starts the gRPC server in the lifespan; imported now, so a missing extra fails at once."""
    try:
        from maestrale.serving.grpc_server import start_grpc
    except ImportError as exc:
        raise ConfigError(
            f"gRPC serving needs the grpc extra ({exc.name} is missing): pip install 'maestrale[grpc]'"
        ) from None
    return lambda: start_grpc(
        plane, tokens, port=port, host=host, max_message_bytes=max_bytes, metrics=metrics, served=served
    )


def _lifespan(
    repo: ModelRepository, watcher: ReloadWatcher, logger: PredictionLogger | None,
    grpc: Callable[[], Any] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:  # fmt: skip
    """Start the bus consumer, the logger and gRPC with the app; stop them, flush and unload at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(watcher.start)  # declares the queue: a blocking broker round trip
        if logger is not None:
            logger.start()
        server = None if grpc is None else await run_in_threadpool(grpc)
        app.state.grpc = server
        try:
            yield
        finally:
            if server is not None:  # no new calls; the running ones get 5 s
                await run_in_threadpool(lambda: server.stop(5).wait())
            await run_in_threadpool(watcher.stop)
            if logger is not None:
                await run_in_threadpool(logger.close)  # flush: the last predictions reach the monitor
            await run_in_threadpool(repo.close)

    return lifespan


def _install_error_handlers(app: FastAPI) -> None:
    """Every error as `{"error": "..."}`; a 401 says which scheme it wants (RFC 9110)."""

    @app.exception_handler(MaestraleError)
    async def _maestrale_error(_: Request, exc: MaestraleError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": describe_errors(exc.errors())}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


def _version_lookup(repo: ModelRepository) -> Callable[[str, str | None], ServedModel]:
    """`served_version(name, version)`: the model a request uses to its end, or NotFound."""

    def served_version(name: str, version: str | None) -> ServedModel:
        served = repo.get(name)  # read once: this request uses this object to its end
        if version is not None and version != str(served.version):
            raise NotFound(
                f"version {version} of {name!r} is not served here; it serves version {served.version}"
            )
        return served

    return served_version


def _health_and_metadata(plane: DataPlane, metrics: ServingMetrics, reader: Any) -> APIRouter:
    """Health and /metrics (open: probes and Prometheus carry no token), metadata (`reader`)."""
    router = APIRouter()

    @router.get("/v2/health/live", tags=["health"])
    def live() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"live": plane.live()}

    @router.get("/v2/health/ready", tags=["health"])
    def ready() -> JSONResponse:
        """Readiness: every model is loaded."""
        ok = plane.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 400)

    @router.get("/metrics", tags=["health"])
    def prometheus() -> Response:
        """Prometheus metrics: latency, status counts, served versions, reloads, logger."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/v2", tags=["metadata"], dependencies=[reader])
    def server_metadata() -> MetadataServerResponse:
        """Server name, version and V2 extensions (`binary_tensor_data`)."""
        return plane.server_metadata()

    @router.get(
        "/v2/models/{name}", tags=["metadata"], response_model_exclude_none=True, dependencies=[reader]
    )
    def model_metadata(name: str) -> MetadataModelResponse:
        """Inputs (one per feature, from the input schema) and the `predict` output."""
        return plane.model_metadata(name)

    @router.get(
        "/v2/models/{name}/versions/{version}", tags=["metadata"], response_model_exclude_none=True,
        dependencies=[reader],
    )  # fmt: skip
    def model_version_metadata(name: str, version: str) -> MetadataModelResponse:
        """Metadata of the version served (404 for any other version)."""
        return plane.model_metadata(name, version)

    @router.get("/v2/models/{name}/ready", tags=["health"], dependencies=[reader])
    def model_ready(name: str) -> dict[str, Any]:
        """The model is loaded and served."""
        return {"name": name, "ready": plane.model_ready(name)}

    @router.get("/v2/models/{name}/versions/{version}/ready", tags=["health"], dependencies=[reader])
    def model_version_ready(name: str, version: str) -> dict[str, Any]:
        """This version is the one served."""
        return {"name": name, "ready": plane.model_ready(name, version)}

    return router


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker of `maestrale serve --workers N` (refs and options from the env)."""
    refs = os.environ.get("MAESTRALE_SERVE_REFS", "").split()
    poll = float(os.environ.get("MAESTRALE_SERVE_RELOAD_POLL", "30"))
    grpc_port = os.environ.get("MAESTRALE_SERVE_GRPC_PORT")
    return create_app(
        load_settings(), refs, log_predictions=os.environ.get("MAESTRALE_SERVE_LOG", "1") == "1",
        reload_poll_s=poll or None,
        trusted_types=os.environ.get("MAESTRALE_SERVE_TRUST", "").split() or None,
        grpc_port=int(grpc_port) if grpc_port else None,
        host=os.environ.get("MAESTRALE_SERVE_HOST", "127.0.0.1"),
    )  # fmt: skip


def _document_bodies(app: FastAPI, repo: ModelRepository) -> None:
    """Generate the OpenAPI document once: the inference bodies' nested models as components, and a
    request that works on the first served model as each body's example (what Swagger UI offers)."""
    from fastapi.openapi.utils import get_openapi

    from maestrale.serving.inference import add_body_components

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = add_body_components(document)
            _add_examples(app.openapi_schema, repo)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_examples(document: dict[str, Any], repo: ModelRepository) -> None:
    names = repo.names()
    columns = repo.get(names[0]).columns if names else None
    if not columns:
        return
    row = {c.name: _example_value(c.dtype) for c in columns}
    infer = {
        "inputs": [
            {"name": c.name, "shape": [1], "datatype": datatype_of(c.dtype), "data": [row[c.name]]}
            for c in columns
        ]
    }
    examples = {"/infer": infer, "/predict": {"records": [row]}}
    for path, item in document.get("paths", {}).items():
        body = item.get("post", {}).get("requestBody", {}).get("content", {}).get("application/json")
        for suffix, example in examples.items():
            if body is not None and path.endswith(suffix):
                body["example"] = example


def _example_value(dtype: str) -> Any:
    kind = datatype_of(dtype)
    if kind == "BOOL":
        return True
    if kind.startswith(("INT", "UINT")):
        return 1
    if kind.startswith("FP"):
        return 0.5
    return "2024-06-01T12:00:00Z" if dtype.startswith("datetime") else "x"
