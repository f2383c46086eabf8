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

Every response names the version that actually served it (`model_version`), so a client sees the
swap. Prediction logging reads `entity` from a `parameters.entity`, an `X-Maestrale-Entity` header,
an `entity` input/record key (per row), else the model name; `target_time` from a `target_time`
input/record key or `parameters.target_time` (one ISO 8601 time, or one per row), else the request
time; `issued_at` from `parameters.issued_at` (one ISO 8601 time: a forecast computed earlier, or a
backfill), else the request time.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from maestrale import __version__
from maestrale.config import Settings, load_settings
from maestrale.errors import InvalidInput, MaestraleError, NotFound
from maestrale.serving.logger import PredictionLogger
from maestrale.serving.metrics import ServingMetrics, ServingMetricsMiddleware
from maestrale.serving.reload import ReloadWatcher
from maestrale.serving.repository import ModelRepository, ServedModel
from maestrale.serving.v2 import (
    OUTPUT,
    Decoded,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    Parameters,
    datatype_of,
    decode_infer,
    decode_records,
    encode_output,
)

log = logging.getLogger("maestrale.serving")
ENTITY_HEADER = "x-maestrale-entity"
JSON = "application/json"


class PredictRequest(BaseModel):
    """`POST /models/{name}/predict` body: one object per row, plus optional logging parameters."""

    records: list[dict[str, Any]] = Field(min_length=1)
    parameters: dict[str, Any] | None = None


class PredictResponse(BaseModel):
    """What `/models/{name}/predict` returns; `model_version` is the version that served."""

    model_name: str
    model_version: int
    predictions: list[Any]


class PredictionFailed(MaestraleError):
    """The model raised something other than a ValueError on valid input: a server-side problem."""

    status_code = 500
    code = "prediction_failed"


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
) -> FastAPI:
    """Load `refs` (`NAME@ALIAS` follows the alias, `NAME:V` is pinned) and build the V2 server.

    `trusted_types` lists the custom classes (`module.Class`) a skops artifact may contain, as in
    `Registry.load(..., trusted_types=...)`. Models load here, so a bad reference fails at once;
    the bus consumer, the alias poll (every `reload_poll_s` s; None: events only) and the
    prediction logger run between the app's lifespan startup and shutdown (uvicorn's default), and
    the shutdown publishes what the logger holds.
    """
    from maestrale.bus.transport import get_transport
    from maestrale.registry.client import Registry

    settings = settings or load_settings()
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
            metrics=metrics,
        )  # fmt: skip
    watcher = ReloadWatcher(repo, transport, poll_s=reload_poll_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(watcher.start)  # declares the queue: a blocking broker round trip
        if logger is not None:
            logger.start()
        try:
            yield
        finally:
            await run_in_threadpool(watcher.stop)
            if logger is not None:
                await run_in_threadpool(logger.close)  # flush: the last predictions reach the monitor
            await run_in_threadpool(repo.close)

    app = FastAPI(
        title="Maestrale model server", version=__version__, lifespan=lifespan,
        description="Open Inference Protocol (V2) for models of the Maestrale registry.",
    )  # fmt: skip
    app.state.repository, app.state.metrics = repo, metrics
    app.state.logger, app.state.watcher = logger, watcher
    app.add_middleware(ServingMetricsMiddleware, metrics=metrics, served=set(repo.names()))

    @app.exception_handler(MaestraleError)
    async def _maestrale_error(_: Request, exc: MaestraleError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _describe(exc.errors())}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    def served_version(name: str, version: str | None) -> ServedModel:
        served = repo.get(name)  # read once: this request uses this object to its end
        if version is not None and version != str(served.version):
            raise NotFound(
                f"version {version} of {name!r} is not served here; it serves version {served.version}"
            )
        return served

    # -- health and metadata ------------------------------------------------------------------------
    @app.get("/v2/health/live", tags=["health"])
    def live() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"])
    def ready() -> JSONResponse:
        """Readiness: every model is loaded."""
        ok = repo.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 400)

    @app.get("/v2", tags=["metadata"])
    def server_metadata() -> MetadataServerResponse:
        """Server name, version and V2 extensions (none)."""
        return MetadataServerResponse(name="maestrale", version=__version__, extensions=[])

    @app.get("/v2/models/{name}", tags=["metadata"], response_model_exclude_none=True)
    def model_metadata(name: str) -> MetadataModelResponse:
        """Inputs (one per feature, from the input schema) and the `predict` output."""
        return _metadata(served_version(name, None))

    @app.get("/v2/models/{name}/versions/{version}", tags=["metadata"], response_model_exclude_none=True)
    def model_version_metadata(name: str, version: str) -> MetadataModelResponse:
        """Metadata of the version served (404 for any other version)."""
        return _metadata(served_version(name, version))

    @app.get("/v2/models/{name}/ready", tags=["health"])
    def model_ready(name: str) -> dict[str, Any]:
        """The model is loaded and served."""
        return {"name": served_version(name, None).name, "ready": True}

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["health"])
    def model_version_ready(name: str, version: str) -> dict[str, Any]:
        """This version is the one served."""
        return {"name": served_version(name, version).name, "ready": True}

    @app.get("/metrics", tags=["health"])
    def prometheus() -> Response:
        """Prometheus metrics: latency, status counts, served versions, reloads, logger."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- inference ----------------------------------------------------------------------------------
    async def infer(request: Request, name: str, version: str | None) -> Response:
        issued_at = datetime.now(UTC)
        served = served_version(name, version)
        if "inference-header-content-length" in request.headers:
            raise InvalidInput("the binary tensor extension is not supported: send JSON tensors")
        req = _parse(InferenceRequest, await request.body())
        entity = request.headers.get(ENTITY_HEADER)
        return Response(await run_in_threadpool(_infer, served, req, entity, issued_at), media_type=JSON)

    def _infer(served: ServedModel, req: InferenceRequest, entity: str | None, issued_at: datetime) -> bytes:
        decoded = decode_infer(req, served.columns)
        params = (req.parameters.model_extra or {}) if req.parameters else {}
        pred = _predict_and_log(served, decoded, params, entity, issued_at)
        body = InferenceResponse(
            model_name=served.name, model_version=str(served.version), id=req.id or str(uuid.uuid4()),
            outputs=[encode_output(pred)],
        )  # fmt: skip
        return body.model_dump_json(exclude_none=True).encode()

    def _predict_and_log(
        served: ServedModel, decoded: Decoded, params: dict[str, Any], entity: str | None,
        issued_at: datetime,
    ) -> Any:  # fmt: skip
        target = decoded.extras.get("target_time", params.get("target_time"))
        target_time = None if target is None else _times(target, decoded.rows)
        if params.get("issued_at") is not None:
            if not isinstance(params["issued_at"], str):
                raise InvalidInput(
                    "parameters.issued_at must be one ISO 8601 time, e.g. 2012-06-01T18:00:00Z"
                )
            issued_at = _times(params["issued_at"], 1)[0].to_pydatetime()
        try:
            pred = served.predict(decoded.frame)
        except ValueError as exc:  # scikit-learn's way of saying "not this input" (NaN, wrong width…)
            raise InvalidInput(f"{served.name}:{served.version} cannot predict this input: {exc}") from None
        except Exception as exc:
            log.exception("%s:%d failed to predict", served.name, served.version)
            raise PredictionFailed(
                f"{served.name}:{served.version} failed: {type(exc).__name__}: {exc}"
            ) from None
        if logger is not None:
            frame = decoded.frame
            if not isinstance(frame, pd.DataFrame):
                frame = pd.DataFrame(frame, columns=[f"f{i}" for i in range(frame.shape[1])])
            who = decoded.extras.get("entity", params.get("entity") or entity or served.name)
            who = who if isinstance(who, np.ndarray) else str(who)
            logger.log(
                served.name, served.version, frame, pred, entity=who, issued_at=issued_at,
                target_time=target_time,
            )  # fmt: skip
        return pred

    @app.post("/v2/models/{name}/infer", tags=["inference"])
    async def model_infer(request: Request, name: str) -> Response:
        """V2 inference on the version currently served."""
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["inference"])
    async def model_version_infer(request: Request, name: str, version: str) -> Response:
        """V2 inference on this version (404 when another version is served)."""
        return await infer(request, name, version)

    @app.post("/models/{name}/predict", tags=["inference"])
    async def predict_records(request: Request, name: str) -> Response:
        """Plain JSON: `{"records": [{feature: value}, …]}` → `{"predictions": […]}`."""
        issued_at = datetime.now(UTC)
        served = served_version(name, None)
        req = _parse(PredictRequest, await request.body())
        entity = request.headers.get(ENTITY_HEADER)

        def run() -> bytes:
            decoded = decode_records(req.records, served.columns)
            pred = _predict_and_log(served, decoded, req.parameters or {}, entity, issued_at)
            out = np.asarray(pred)
            predictions = out.tolist() if out.dtype.kind in "fiub" else out.astype(str).tolist()
            return (
                PredictResponse(model_name=served.name, model_version=served.version, predictions=predictions)
                .model_dump_json()
                .encode()
            )

        return Response(await run_in_threadpool(run), media_type=JSON)

    return app


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidInput(f"the request body is not valid JSON: {errors[0]['msg']}") from None
        raise InvalidInput(_describe(errors)) from None


def _describe(errors: Any) -> str:
    parts = [f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in list(errors)[:5]]
    return "invalid request: " + "; ".join(parts)


def _times(value: Any, rows: int) -> pd.DatetimeIndex:
    """Target times from one ISO 8601 string or one per row; they must carry a time zone."""
    values = [value] * rows if isinstance(value, str) else value
    if not isinstance(values, list | np.ndarray) or len(values) != rows:
        raise InvalidInput(f"target_time must be one ISO 8601 time or a list of {rows} (one per row)")
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(list(values), format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"target_time is not ISO 8601: {exc}") from None
    if stamps.tz is None:
        raise InvalidInput("target_time needs a time zone, e.g. 2024-06-01T12:00:00Z")
    return stamps


def _metadata(served: ServedModel) -> MetadataModelResponse:
    if served.columns is None:
        inputs = [MetadataTensor(name="input-0", datatype="FP64", shape=[-1, -1])]
    else:
        inputs = [
            MetadataTensor(name=c.name, datatype=datatype_of(c.dtype), shape=[-1]) for c in served.columns
        ]
    params = {"content_type": "pd", "sha256": served.sha256, "alias": served.alias}
    return MetadataModelResponse(
        name=served.name, versions=[str(served.version)], platform=served.platform, inputs=inputs,
        outputs=[MetadataTensor(name=OUTPUT, datatype="FP64", shape=[-1])],
        parameters=Parameters(**{k: v for k, v in params.items() if v is not None}),
    )  # fmt: skip


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker of `maestrale serve --workers N` (refs and options from the env)."""
    refs = os.environ.get("MAESTRALE_SERVE_REFS", "").split()
    poll = float(os.environ.get("MAESTRALE_SERVE_RELOAD_POLL", "30"))
    return create_app(
        load_settings(), refs, log_predictions=os.environ.get("MAESTRALE_SERVE_LOG", "1") == "1",
        reload_poll_s=poll or None,
        trusted_types=os.environ.get("MAESTRALE_SERVE_TRUST", "").split() or None,
    )  # fmt: skip
