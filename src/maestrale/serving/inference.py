"""The model server's inference routes: V2 `infer`, plain JSON `predict`, and their prediction log.

>>> app.include_router(inference_router(served_version, logger, Depends(require("predict"))))
... # doctest: +SKIP

`served_version(name, version)` returns the `ServedModel` a request uses to its end (or raises
NotFound); `logger` (None: no logging) receives every prediction with its inputs, the entity, the
issue and target times (see `maestrale.serving.app`) and the name of the caller's token.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from maestrale.errors import InvalidInput, MaestraleError
from maestrale.serving.logger import PredictionLogger
from maestrale.serving.repository import ServedModel
from maestrale.serving.v2 import (
    Decoded,
    InferenceRequest,
    InferenceResponse,
    decode_infer,
    decode_records,
    encode_output,
)
from maestrale.tokens import TokenInfo

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


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, for the prediction log: the entity header, the request time, the token's name."""

    entity: str | None
    issued_at: datetime
    token: str | None  # None when auth is off

    @classmethod
    def of(cls, request: Request, token: TokenInfo | None) -> Caller:
        """Read at the start of a request, so `issued_at` is when it arrived."""
        return cls(request.headers.get(ENTITY_HEADER), datetime.now(UTC), token.name if token else None)


class PredictionFailed(MaestraleError):
    """The model raised something other than a ValueError on valid input: a server-side problem."""

    status_code = 500
    code = "prediction_failed"


_COMPONENT = "#/components/schemas/{model}"


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body the route reads itself (`parse_body`, not FastAPI).

    The routes take the raw bytes so the limits and the 400 messages stay Maestrale's, which leaves
    FastAPI nothing to document: V2 clients and fuzzers still need the schema. Nested models are
    referenced as components; `add_body_components` puts them into the document.
    """
    schema = model.model_json_schema(ref_template=_COMPONENT)
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_body_components(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the nested models of the documented bodies to `components.schemas` of an OpenAPI document."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (InferenceRequest, PredictRequest):
        for name, sub in model.model_json_schema(ref_template=_COMPONENT).get("$defs", {}).items():
            schemas.setdefault(name, sub)
    return openapi


def inference_router(
    served_version: Callable[[str, str | None], ServedModel],
    logger: PredictionLogger | None,
    predictor: Any,
) -> APIRouter:
    """The three inference routes; `predictor` is the dependency that checks the caller's token."""
    router = APIRouter(tags=["inference"])

    async def infer(request: Request, name: str, version: str | None, token: TokenInfo | None) -> Response:
        caller = Caller.of(request, token)
        served = served_version(name, version)
        if "inference-header-content-length" in request.headers:
            raise InvalidInput("the binary tensor extension is not supported: send JSON tensors")
        req = parse_body(InferenceRequest, await request.body())
        return Response(await run_in_threadpool(v2_infer, served, req, caller, logger), media_type=JSON)

    infer_body, records_body = request_body(InferenceRequest), request_body(PredictRequest)

    @router.post("/v2/models/{name}/infer", openapi_extra=infer_body)
    async def model_infer(request: Request, name: str, token: TokenInfo | None = predictor) -> Response:
        """V2 inference on the version currently served."""
        return await infer(request, name, None, token)

    @router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=infer_body)
    async def model_version_infer(
        request: Request, name: str, version: str, token: TokenInfo | None = predictor
    ) -> Response:
        """V2 inference on this version (404 when another version is served)."""
        return await infer(request, name, version, token)

    @router.post("/models/{name}/predict", openapi_extra=records_body)
    async def predict_records(request: Request, name: str, token: TokenInfo | None = predictor) -> Response:
        """Plain JSON: `{"records": [{feature: value}, …]}` → `{"predictions": […]}`."""
        caller = Caller.of(request, token)
        served = served_version(name, None)
        req = parse_body(PredictRequest, await request.body())
        return Response(
            await run_in_threadpool(records_predict, served, req, caller, logger), media_type=JSON
        )

    return router


def v2_infer(
    served: ServedModel, req: InferenceRequest, caller: Caller, logger: PredictionLogger | None
) -> bytes:
    """The JSON of the V2 response to `req` (runs in a worker thread: decoding and predicting block)."""
    decoded = decode_infer(req, served.columns, served.timezone)
    params = (req.parameters.model_extra or {}) if req.parameters else {}
    pred = predict_and_log(served, decoded, params, caller, logger)
    body = InferenceResponse(
        model_name=served.name, model_version=str(served.version), id=req.id or str(uuid.uuid4()),
        outputs=[encode_output(pred)],
    )  # fmt: skip
    return body.model_dump_json(exclude_none=True).encode()


def records_predict(
    served: ServedModel, req: PredictRequest, caller: Caller, logger: PredictionLogger | None
) -> bytes:
    """The JSON of the `/models/{name}/predict` response to `req` (in a worker thread too)."""
    decoded = decode_records(req.records, served.columns, served.timezone)
    pred = predict_and_log(served, decoded, req.parameters or {}, caller, logger)
    out = np.asarray(pred)
    predictions = out.tolist() if out.dtype.kind in "fiub" else out.astype(str).tolist()
    response = PredictResponse(model_name=served.name, model_version=served.version, predictions=predictions)
    return response.model_dump_json().encode()


def predict_and_log(
    served: ServedModel, decoded: Decoded, params: dict[str, Any], caller: Caller,
    logger: PredictionLogger | None,
) -> Any:  # fmt: skip
    """`served`'s predictions for `decoded`, handed to `logger` with the times, entity and caller."""
    target = decoded.extras.get("target_time", params.get("target_time"))
    target_time = None if target is None else _times(target, decoded.rows)
    if target_time is None and served.time_column is not None:  # a feature pipeline's time input
        target_time = pd.DatetimeIndex(decoded.frame[served.time_column])
    issued_at = caller.issued_at
    if params.get("issued_at") is not None:
        if not isinstance(params["issued_at"], str):
            raise InvalidInput("parameters.issued_at must be one ISO 8601 time, e.g. 2012-06-01T18:00:00Z")
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
        who = decoded.extras.get("entity", params.get("entity") or caller.entity or served.name)
        who = who if isinstance(who, np.ndarray) else str(who)
        logger.log(
            served.name, served.version, frame, pred, entity=who, issued_at=issued_at,
            target_time=target_time, logged_by=caller.token,
        )  # fmt: skip
    return pred


def parse_body(model: type[BaseModel], body: bytes) -> Any:
    """`body` as `model`, or InvalidInput (400) saying what is wrong with it."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidInput(f"the request body is not valid JSON: {errors[0]['msg']}") from None
        raise InvalidInput(describe_errors(errors)) from None


def describe_errors(errors: Any) -> str:
    """Pydantic errors as one line: `invalid request: inputs.0.shape: Field required; …` (at most 5)."""
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
