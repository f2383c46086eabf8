"""The model server's inference routes: V2 `infer` and plain JSON `predict`, over a `DataPlane`.

>>> app.include_router(inference_router(plane, Depends(require("predict"))))  # doctest: +SKIP

The routes read the body and the caller (entity header, arrival time, token name); decoding,
prediction, logging and encoding are the data plane's (`maestrale.serving.dataplane`), shared with
the MLServer runtime.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from maestrale.serving.dataplane import Caller, DataPlane, parse_body
from maestrale.serving.ids import new_id
from maestrale.serving.v2 import OUTPUT, InferenceRequest, output_array
from maestrale.serving.v2_binary import binary_response, parse_binary_request, wants_binary
from maestrale.tokens import TokenInfo

ENTITY_HEADER = "x-maestrale-entity"
JSON = "application/json"
OCTETS = "application/octet-stream"
BINARY_HEADER = "inference-header-content-length"  # the binary tensor extension's JSON header length


class PredictRequest(BaseModel):
    """`POST /models/{name}/predict` body: one object per row, plus optional logging parameters."""

    records: list[dict[str, Any]] = Field(min_length=1)
    parameters: dict[str, Any] | None = None


class PredictResponse(BaseModel):
    """What `/models/{name}/predict` returns; `model_version` is the version that served."""

    model_name: str
    model_version: int
    predictions: list[Any]


def caller_of(request: Request, token: TokenInfo | None) -> Caller:
    """Who asks, read at the start of a request, so `issued_at` is when it arrived."""
    return Caller(request.headers.get(ENTITY_HEADER), datetime.now(UTC), token.name if token else None)


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


def inference_router(plane: DataPlane, predictor: Any) -> APIRouter:
    """The three inference routes; `predictor` is the dependency that checks the caller's token."""
    router = APIRouter(tags=["inference"])

    async def infer(request: Request, name: str, version: str | None, token: TokenInfo | None) -> Response:
        caller = caller_of(request, token)
        plane.lookup(name, version)  # an unknown model is a 404 before the body is read
        header = request.headers.get(BINARY_HEADER)
        body = await request.body()
        if header is None:
            req = parse_body(InferenceRequest, body)
        else:  # the binary tensor extension: decoding reads each tensor straight into an array
            req = await run_in_threadpool(parse_binary_request, body, header)
        content, head = await run_in_threadpool(v2_infer, plane, name, version, req, caller)
        if head is None:
            return Response(content, media_type=JSON)
        return Response(content, media_type=OCTETS, headers={BINARY_HEADER: str(head)})

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
        caller = caller_of(request, token)
        plane.lookup(name, None)
        req = parse_body(PredictRequest, await request.body())
        return Response(await run_in_threadpool(records_predict, plane, name, req, caller), media_type=JSON)

    return router


def v2_infer(
    plane: DataPlane, name: str, version: str | None, req: InferenceRequest, caller: Caller
) -> tuple[bytes, int | None]:
    """(body, JSON header length) of the V2 response to `req`; the length is None for a JSON body.

    Runs in a worker thread: decoding and predicting block. The output is binary when the request
    asks (`binary_data_output`, or the output's `binary_data`), as tritonclient does by default.
    """
    if not wants_binary(req):
        return plane.infer(name, version, req, caller).model_dump_json(exclude_none=True).encode(), None
    served, pred = plane.infer_predictions(name, version, req, caller)
    datatype, arr = output_array(pred)
    header = {
        "model_name": served.name, "model_version": str(served.version), "id": req.id or new_id(),
        "outputs": [{"name": OUTPUT, "datatype": datatype, "shape": list(arr.shape)}],
    }  # fmt: skip
    return binary_response(header, datatype, arr)


def records_predict(plane: DataPlane, name: str, req: PredictRequest, caller: Caller) -> bytes:
    """The JSON of the `/models/{name}/predict` response to `req` (in a worker thread too)."""
    served, pred = plane.predict_records(name, req.records, req.parameters, caller)
    out = np.asarray(pred)
    predictions = out.tolist() if out.dtype.kind in "fiub" else out.astype(str).tolist()
    response = PredictResponse(model_name=served.name, model_version=served.version, predictions=predictions)
    return response.model_dump_json().encode()
