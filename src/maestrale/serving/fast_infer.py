"""The V2 `infer` hot path: a positional model's request decoded straight to an array, no pandas.

>>> decoded = positional_decode(served, [("ghi", [1], "FP64", None, [610.0])], None)  # doctest: +SKIP
>>> decoded.frame, decoded.names  # doctest: +SKIP
(array([[610.]]), ['ghi'])

A model that reads its columns by position (`ServedModel.positional`: a plain scikit-learn estimator
fitted on the schema's numeric columns in order) is given the bare 2-D array the request holds. For
the common, well-formed request this module builds that array itself, in a few microseconds,
instead of the general codec's DataFrame (`maestrale.serving.v2.decode_infer`, ~85 µs for one row of
8 features). It takes a request only when every rule of the general codec is visibly met; anything
else (a reserved input, a per-input content type, a BYTES value, a ragged shape, a bound passed…)
returns None and goes through `decode_infer`, so every refusal keeps its 400 message, word for word.

Both transports use it: the REST middleware (`FastInferMiddleware` in
`maestrale.serving.fast_route`) on orjson-parsed JSON, and the gRPC servicer on the arrays read from
`raw_input_contents`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from maestrale.serving.ids import new_id
from maestrale.serving.v2 import DATATYPES, OUTPUT, RESERVED_INPUTS, Decoded, _kind, output_array
from maestrale.serving.v2_limits import LIMITS

if TYPE_CHECKING:
    from maestrale.serving.repository import ServedModel

#: (name, shape, datatype, parameters, data) of one input, whatever carried it
Input = tuple[Any, Any, Any, Any, Any]
# request parameters the hot path reads (the rest: binary output, headers… go the general way)
FAST_PARAMETERS = frozenset({"content_type", "entity", "target_time", "issued_at"})
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_NUMERIC = frozenset("fiu")


def schema_dtype(served: ServedModel) -> str | None:
    """The one float dtype of every input column of a positional model, else None (no hot path).

    One float dtype is what the general codec turns into one 2-D block (`v2._frame`); with any
    other mix of dtypes it builds per-column casts, which the hot path does not repeat.
    """
    columns = served.columns
    if not served.positional or not columns:
        return None
    dtypes = {c.dtype for c in columns}
    if len(dtypes) != 1 or _kind(columns[0].dtype) != "f":
        return None
    if any(c.name in RESERVED_INPUTS for c in columns):
        return None  # the logger treats such columns apart: the general path knows how
    return columns[0].dtype


def positional_decode(served: ServedModel, inputs: Sequence[Input], content_type: Any) -> Decoded | None:
    """The model's 2-D input from one input per feature (`[n]`) or one `[n, k]` input, else None.

    `data` is a JSON list or an ndarray (gRPC raw contents). None means "not provably valid here":
    the caller decodes the request with the general codec, which accepts it or says why not.
    """
    dtype = schema_dtype(served)
    if dtype is None or content_type not in (None, "pd", "np") or not inputs:
        return None
    columns = served.columns or []
    names = [c.name for c in columns]
    if len(inputs) == 1 and (content_type == "np" or inputs[0][0] not in names):
        matrix = _matrix(inputs[0], len(names))
        if matrix is None:
            return None
        return Decoded(np.asfortranarray(matrix, dtype=dtype), len(matrix), names=names)
    if len(inputs) != len(names) or len(names) > LIMITS.max_inputs:
        return None
    by_name: dict[str, np.ndarray] = {}
    total = 0
    for inp in inputs:
        arr = _column(inp)
        if arr is None or inp[0] in by_name or inp[0] not in names:
            return None
        total += len(arr)
        by_name[inp[0]] = arr
    rows = len(by_name[names[0]])
    if total > LIMITS.max_elements or any(len(a) != rows for a in by_name.values()):
        return None
    # column-major, as a DataFrame's float block reaches the model: the same BLAS sums, to the bit
    block = np.empty((rows, len(names)), dtype=dtype, order="F")
    for j, n in enumerate(names):
        block[:, j] = by_name[n]
    return Decoded(block, rows, names=names)


def _column(inp: Input) -> np.ndarray | None:
    """A feature input `[n]` of numbers as a 1-D array, or None."""
    name, shape, datatype, params, data = inp
    if params or DATATYPES.get(datatype) not in _NUMERIC or not _shape(shape, 1):
        return None
    arr = _numbers(data, datatype)
    if arr is None or arr.ndim != 1 or len(arr) != shape[0] or len(name) > LIMITS.max_name_length:
        return None
    return arr


def _matrix(inp: Input, k: int) -> np.ndarray | None:
    """One `[n, k]` input of numbers (flat or nested data) as an (n, k) array, or None."""
    name, shape, datatype, params, data = inp
    if params or DATATYPES.get(datatype) not in _NUMERIC or not _shape(shape, 2) or shape[1] != k:
        return None
    if shape[0] * k > LIMITS.max_elements or len(name) > LIMITS.max_name_length:
        return None
    arr = _numbers(data, datatype)
    if arr is None or arr.size != shape[0] * k or arr.ndim not in (1, 2):
        return None
    if arr.ndim == 2 and arr.shape != (shape[0], k):
        return None
    return arr.reshape(shape[0], k)


def _shape(shape: Any, dims: int) -> bool:
    return (
        isinstance(shape, list | tuple)
        and len(shape) == dims
        and all(type(d) is int and d >= 0 for d in shape)
    )


def _numbers(data: Any, datatype: str) -> np.ndarray | None:
    """`data` as an int or float array, as `np.asarray` reads it in the general codec, or None.

    An integer datatype takes whole numbers only: floats there go the general way (it checks them).
    """
    if isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, list):
        try:
            arr = np.asarray(data)
        except ValueError:  # ragged
            return None
    else:
        return None
    kind = arr.dtype.kind
    if kind not in _NUMERIC or (DATATYPES[datatype] in "iu" and kind == "f"):
        return None
    return arr


class JsonRequest(NamedTuple):
    """What the hot path reads of a JSON V2 request."""

    inputs: list[Input]
    content_type: Any
    params: dict[str, Any]  # the logging parameters: entity, target_time, issued_at
    id: str | None


def json_inputs(body: Any) -> JsonRequest | None:
    """The inputs, content type, logging parameters and id of an orjson-parsed V2 request, or None
    when it holds anything the hot path leaves to the general codec (see the module docstring)."""
    if type(body) is not dict or not body.keys() <= _REQUEST_KEYS:
        return None
    rid, params, inputs, outputs = (
        body.get("id"),
        body.get("parameters"),
        body.get("inputs"),
        body.get("outputs"),
    )
    if (rid is not None and type(rid) is not str) or type(inputs) is not list:
        return None
    if params is None:
        params = {}
    elif type(params) is not dict or not params.keys() <= FAST_PARAMETERS:
        return None
    content_type = params.get("content_type")
    if outputs is not None and not _plain_outputs(outputs):
        return None
    found: list[Input] = []
    for inp in inputs:
        if type(inp) is not dict or not inp.keys() <= _INPUT_KEYS or type(inp.get("name")) is not str:
            return None
        if type(inp.get("datatype")) is not str:
            return None
        found.append((inp["name"], inp.get("shape"), inp["datatype"], inp.get("parameters"), inp.get("data")))
    return JsonRequest(found, content_type, {k: v for k, v in params.items() if k != "content_type"}, rid)


def _plain_outputs(outputs: Any) -> bool:
    """`outputs` asks for `predict` only, without parameters (no binary output)."""
    return type(outputs) is list and all(
        type(o) is dict and o.keys() <= {"name", "parameters"} and o.get("name") == OUTPUT
        and not o.get("parameters")
        for o in outputs
    )  # fmt: skip


def json_response(served: ServedModel, request_id: str | None, pred: Any) -> bytes:
    """The V2 JSON response (as `InferenceResponse.model_dump_json(exclude_none=True)` writes it)."""
    datatype, arr = output_array(pred)
    flat = arr.reshape(-1)
    output = {
        "name": OUTPUT, "shape": list(arr.shape), "datatype": datatype, "parameters": {"content_type": "np"},
        # orjson writes numeric arrays itself (NaN as null, as pydantic does); strings go as a list
        "data": flat if flat.dtype.kind in "fib" else flat.tolist(),
    }  # fmt: skip
    document = {
        "model_name": served.name, "model_version": str(served.version),
        "id": request_id or new_id(), "outputs": [output],
    }  # fmt: skip
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
