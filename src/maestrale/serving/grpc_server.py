"""The V2 gRPC service (`inference.GRPCInferenceService`, KServe's `grpc_predict_v2.proto`) over a DataPlane.

>>> server = start_grpc(app.state.dataplane, app.state.auth, port=8081)  # doctest: +SKIP
>>> server.stop(5)  # doctest: +SKIP

`maestrale serve --grpc-port 8081` starts it beside the HTTP server, over the same data plane: the
same models (so a hot reload is seen by both), the same decoding, bounds and 400 messages, the same
prediction logging, and the same token source. Its calls map to the REST routes and their scopes:

| RPC | REST | scope |
|---|---|---|
| ServerLive, ServerReady | /v2/health/live, /v2/health/ready | none |
| ServerMetadata, ModelMetadata, ModelReady | /v2, /v2/models/{name}[/ready] | read |
| ModelInfer | POST /v2/models/{name}/infer | predict |

The token travels as `authorization: Bearer <token>` metadata, the entity as `x-maestrale-entity`.
Errors carry the REST message with the matching status code: INVALID_ARGUMENT (400), NOT_FOUND
(404), UNAUTHENTICATED (401), PERMISSION_DENIED (403), UNAVAILABLE (503), INTERNAL otherwise.
Inputs come as `raw_input_contents` (what tritonclient sends) or typed `contents`; the output
always goes back as `raw_output_contents`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
import numpy as np
from pydantic import ValidationError

from maestrale.errors import ConfigError, InvalidInput, MaestraleError
from maestrale.serving.auth import authorize
from maestrale.serving.dataplane import Caller, DataPlane, describe_errors
from maestrale.serving.fast_infer import FAST_PARAMETERS, positional_decode, schema_dtype
from maestrale.serving.ids import new_id
from maestrale.serving.inference import ENTITY_HEADER
from maestrale.serving.proto import grpc_predict_v2_pb2 as pb
from maestrale.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from maestrale.serving.v2 import (
    OUTPUT,
    Decoded,
    InferenceRequest,
    MetadataTensor,
    Parameters,
    RequestInput,
    RequestOutput,
    output_array,
)
from maestrale.serving.v2_binary import RAW_DTYPES, _check_shape, tensor_bytes, tensor_from_bytes
from maestrale.serving.v2_limits import LIMITS

if TYPE_CHECKING:
    from maestrale.serving.auth import TokenSource
    from maestrale.serving.metrics import ServingMetrics
    from maestrale.serving.repository import ServedModel
    from maestrale.tokens import TokenInfo

log = logging.getLogger("maestrale.serving.grpc")
T = TypeVar("T")
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}  # fmt: skip
# the typed `contents` field that carries each datatype (FP16 has none: raw only, as the proto says)
CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip
# the raw datatypes the hot path reads (BOOL and BYTES need checks only the general codec makes)
_RAW_NUMERIC = {k: np.dtype(v) for k, v in RAW_DTYPES.items() if k not in ("BOOL", "BYTES")}
SEND_LIMIT = 64 * 1024 * 1024  # a response holds one value per row: 2M FP64 values are 16 MB


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six RPCs over `plane`; `tokens` None: auth off; `metrics` counts them as the REST routes are
    counted (endpoint `grpc:<RPC>`, status the REST code of the outcome)."""

    def __init__(
        self, plane: DataPlane, tokens: TokenSource | None, metrics: ServingMetrics | None = None,
        served: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        self.plane, self.tokens, self.metrics, self.served = plane, tokens, metrics, served

    def _run(
        self, context: grpc.ServicerContext, scope: str | None, call: Callable[[TokenInfo | None], T],
        rpc: str, model: str | None = None,
    ) -> T:  # fmt: skip
        """`call(token)` after the scope check; a MaestraleError aborts with its status and message."""
        start, status = time.perf_counter(), 500
        try:
            token = None if scope is None else authorize(self.tokens, _bearer(context), scope)
            result = call(token)
            status = 200
            return result
        except MaestraleError as exc:
            status = exc.status_code
            context.abort(STATUS.get(exc.status_code, grpc.StatusCode.INTERNAL), exc.message)
        except Exception as exc:  # a bug: logged, and said without a traceback
            log.exception("gRPC call failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            if self.metrics is not None:
                # a model label only for names served here: random names cannot grow the label set
                label = "" if model is None else model if model in self.served else "other"
                self.metrics.count(label, f"grpc:{rpc}", status, time.perf_counter() - start)
        raise AssertionError("unreachable: abort raises")

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run(context, None, lambda _: pb.ServerLiveResponse(live=self.plane.live()), "ServerLive")

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run(
            context, None, lambda _: pb.ServerReadyResponse(ready=self.plane.ready()), "ServerReady"
        )

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        def ready(_: TokenInfo | None) -> Any:
            return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version or None))

        return self._run(context, "read", ready, "ModelReady", request.name)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def metadata(_: TokenInfo | None) -> Any:
            meta = self.plane.server_metadata()
            return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=meta.extensions)

        return self._run(context, "read", metadata, "ServerMetadata")

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def metadata(_: TokenInfo | None) -> Any:
            meta = self.plane.model_metadata(request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=meta.name, versions=meta.versions, platform=meta.platform,
                inputs=[_tensor_meta(t) for t in meta.inputs],
                outputs=[_tensor_meta(t) for t in meta.outputs],
            )  # fmt: skip

        return self._run(context, "read", metadata, "ModelMetadata", request.name)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        arrived = datetime.now(UTC)

        def infer(token: TokenInfo | None) -> Any:
            served = self.plane.lookup(request.model_name, request.model_version or None)  # NOT_FOUND first
            entity = dict(context.invocation_metadata()).get(ENTITY_HEADER)
            caller = Caller(str(entity) if entity else None, arrived, token.name if token else None)
            # the hot path: the raw tensors straight into the model's array, without the V2 request model
            fast = _raw_positional(served, request)
            if fast is not None:
                pred = self.plane.predict(served, fast[0], fast[1], caller)
            else:
                req = request_of(request)  # the general codec: it accepts the request or says why not
                served, pred = self.plane.infer_predictions(
                    request.model_name, request.model_version or None, req, caller
                )
            datatype, arr = output_array(pred)
            out = pb.ModelInferResponse.InferOutputTensor(name=OUTPUT, datatype=datatype, shape=arr.shape)
            return pb.ModelInferResponse(
                model_name=served.name, model_version=str(served.version), id=request.id or new_id(),
                outputs=[out], raw_output_contents=[tensor_bytes(datatype, arr)],
            )  # fmt: skip

        return self._run(context, "predict", infer, "ModelInfer", request.model_name)


def _raw_positional(served: ServedModel, msg: Any) -> tuple[Decoded, dict[str, Any]] | None:
    """(the model's array, the logging parameters) of a `ModelInferRequest` whose every input is a
    numeric raw tensor of exactly its shape's size, decoded by `maestrale.serving.fast_infer`; None for
    anything else (typed contents, BYTES or BOOL, a parameter the hot path does not read, a size that
    does not match…): `request_of` and the general codec then accept it or say why not, in their words.
    """
    raw, inputs = msg.raw_input_contents, msg.inputs
    if not inputs or len(raw) != len(inputs) or len(inputs) > LIMITS.max_inputs:
        return None
    if any(o.name != OUTPUT or o.parameters for o in msg.outputs):
        return None
    params: dict[str, Any] = {}
    for key, value in msg.parameters.items():  # the logging ones, as strings, as the general path reads
        if key not in FAST_PARAMETERS or value.WhichOneof("parameter_choice") != "string_param":
            return None
        params[key] = value.string_param
    content_type = params.pop("content_type", None)
    block = _raw_block(served, inputs, raw, content_type)
    if block is not None:
        return block, params
    found = []
    for t, buf in zip(inputs, raw, strict=True):
        dtype = _RAW_NUMERIC.get(t.datatype)
        # the hot path takes [n] or [n, k] only: a claimed shape of many dims is not even copied
        if dtype is None or not 0 < len(t.shape) <= 2 or t.parameters or t.HasField("contents"):
            return None
        shape = list(t.shape)
        if min(shape) < 0:
            return None
        count = math.prod(shape)
        if count > LIMITS.max_elements or count * dtype.itemsize != len(buf):
            return None
        found.append((t.name, shape, t.datatype, None, np.frombuffer(buf, dtype=dtype, count=count)))
    decoded = positional_decode(served, found, content_type)
    return None if decoded is None else (decoded, params)


def _raw_block(served: ServedModel, inputs: Any, raw: Any, content_type: Any) -> Decoded | None:
    """The commonest request (what tritonclient sends for a metadata-driven call): one `[n]` raw tensor
    per feature, in the schema's order, all of one numeric datatype. Its bytes, joined, are the
    transposed (n, k) block: read once, instead of column by column (`positional_decode` builds the
    same column-major block, to the bit). None for anything else."""
    dtype = schema_dtype(served)
    names = [c.name for c in served.columns or ()]
    if dtype is None or len(inputs) != len(names) or (len(names) == 1 and content_type == "np"):
        return None
    if content_type not in (None, "pd", "np"):
        return None
    first = inputs[0]
    raw_dtype = _RAW_NUMERIC.get(first.datatype)
    if raw_dtype is None or len(first.shape) != 1:
        return None
    rows = first.shape[0]
    if rows < 0 or rows * len(names) > LIMITS.max_elements:
        return None
    size = rows * raw_dtype.itemsize
    for t, buf, name in zip(inputs, raw, names, strict=True):
        if t.name != name or t.datatype != first.datatype or t.shape != first.shape or len(buf) != size:
            return None
        if t.parameters or t.HasField("contents"):
            return None
    flat = np.frombuffer(b"".join(raw), dtype=raw_dtype).reshape(len(names), rows)
    return Decoded(np.array(flat.T, dtype=dtype, order="F"), rows, names=names)


def _bearer(context: grpc.ServicerContext) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry (None when there is none)."""
    value = dict(context.invocation_metadata()).get("authorization")
    if not isinstance(value, str):
        return None
    scheme, _, token = value.partition(" ")
    return token if scheme.lower() == "bearer" else None


def _tensor_meta(t: MetadataTensor) -> Any:
    return pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape)


def _parameters(params: Mapping[str, Any], where: str) -> Parameters | None:
    """A proto parameter map as V2 `parameters` (bool, int64 or string values)."""
    if not params:
        return None
    values = {k: getattr(v, v.WhichOneof("parameter_choice") or "string_param") for k, v in params.items()}
    try:
        return Parameters.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {describe_errors(exc.errors(include_url=False))}") from None


def request_of(msg: Any) -> InferenceRequest:
    """The V2 request of a `ModelInferRequest`: raw inputs read with `np.frombuffer`, typed ones copied."""
    raw = msg.raw_input_contents
    if len(msg.inputs) > LIMITS.max_inputs:
        raise InvalidInput(f"{len(msg.inputs):,} inputs in one request: at most {LIMITS.max_inputs:,}")
    if raw and len(raw) != len(msg.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} tensors for {len(msg.inputs)} inputs: send one per input, "
            "in the order of the inputs"
        )
    if not msg.inputs:
        raise InvalidInput("no inputs: send one input per feature (or one [n, k] input)")
    inputs = []
    for i, t in enumerate(msg.inputs):
        shape = [int(d) for d in t.shape]
        name = t.name
        if raw:
            if t.HasField("contents"):
                raise InvalidInput(f"input {name[:40]!r}: has both contents and raw_input_contents; send one")
            data = tensor_from_bytes(name, t.datatype, shape, raw[i])
        else:
            data = _contents(t, shape)
        inp = RequestInput.model_construct(
            name=name, shape=shape, datatype=t.datatype, data=cast(list[Any], data),
            parameters=_parameters(t.parameters, f"input {name[:40]!r}"),
        )  # fmt: skip
        inputs.append(inp)
    outputs = [
        RequestOutput(name=o.name, parameters=_parameters(o.parameters, f"output {o.name[:40]!r}"))
        for o in msg.outputs
    ]
    return InferenceRequest.model_construct(
        id=msg.id or None, parameters=_parameters(msg.parameters, "parameters"), inputs=inputs,
        outputs=outputs or None,
    )  # fmt: skip


def _contents(t: Any, shape: list[int]) -> np.ndarray:
    """A typed-contents input as a flat array; 400 when the field does not match the datatype or shape."""
    name = t.name[:40]
    field = CONTENTS.get(t.datatype)
    if field is None:
        raise InvalidInput(
            f"input {name!r}: datatype {t.datatype[:20]!r} cannot travel in contents; use one of "
            f"{', '.join(CONTENTS)}, or raw_input_contents (FP16)"
        )
    _check_shape(t.name, shape, 0)
    values = getattr(t.contents, field)
    count = int(np.prod(shape))
    if len(values) != count:
        raise InvalidInput(
            f"input {name!r}: shape {shape} needs {count} values but contents.{field} has {len(values)}"
        )
    if t.datatype != "BYTES":
        return np.asarray(values)
    try:
        return np.asarray([v.decode() for v in values], dtype=object)
    except UnicodeDecodeError:
        raise InvalidInput(f"input {name!r}: a BYTES element is not UTF-8 text") from None


def start_grpc(
    plane: DataPlane, tokens: TokenSource | None, *, port: int, host: str = "127.0.0.1",
    max_message_bytes: int = 32 * 1024 * 1024, workers: int = 8, metrics: ServingMetrics | None = None,
    served: frozenset[str] = frozenset(),
) -> grpc.Server:  # fmt: skip
    """Serve `inference.GRPCInferenceService` on host:port; ConfigError when the port cannot be bound.

    `max_message_bytes` bounds a request (the REST body limit); workers of `maestrale serve --workers N`
    each bind the same port (gRPC sets SO_REUSEPORT on Linux) and the kernel spreads connections.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="serve-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", SEND_LIMIT),
        ],
    )
    servicer = InferenceServicer(plane, tokens, metrics, served)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ConfigError(f"cannot listen for gRPC on {address}: is the port in use? (--grpc-port)")
    server.start()
    log.info("V2 gRPC on %s", address)
    return server
