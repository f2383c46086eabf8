"""The Open Inference Protocol (V2) bodies and the codec between V2 tensors and the model's DataFrame.

>>> req = InferenceRequest.model_validate(
...     {"inputs": [{"name": "ghi", "shape": [2], "datatype": "FP64", "data": [500.0, 610.0]}]}
... )
>>> decode_infer(req, [ColumnSchema(name="ghi", dtype="float64")]).frame["ghi"].tolist()
[500.0, 610.0]

Two request layouts are read (MLServer's `pd` and `np` content types, minimally):

- one input per feature, named as the feature, shape `[n]` or `[n, 1]` (request
  `parameters.content_type` absent or `"pd"`): the columns of the frame;
- one 2-D input `[n, k]` whose name is not a feature (or `parameters.content_type: "np"`): its columns
  follow the model's input schema, in order.

Either way the model gets a DataFrame in the schema's column order with the schema's dtypes. A
datetime input (a feature pipeline's time, `maestrale.features`) is BYTES of ISO 8601 strings, read by
`maestrale.timeparse`: with an offset, or naive when the model declares the zone they are in. Two
more inputs are read but not given to the model, for prediction logging: `target_time` (BYTES, ISO
8601 with a time zone) and `entity` (BYTES), each one value per row. Per-input content types `np`,
`str` and `datetime` are accepted and change nothing (the schema decides the dtype); any other
content type (`base64`, `pd_json`, …) and the binary tensor extension are refused with a 400.
Every mistake raises `InvalidInput` (HTTP 400) with a message that names the input and the fix;
requests beyond the bounds of `maestrale.serving.v2_limits` (values, inputs, records, string
lengths) are refused the same way before any array is built.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from maestrale.errors import InvalidInput
from maestrale.registry.types import ColumnSchema
from maestrale.serving.v2_limits import check_inputs, check_records, check_strings

# V2 datatype → numpy kind of the values it carries.
DATATYPES: dict[str, str] = {
    "BOOL": "b", "UINT8": "u", "UINT16": "u", "UINT32": "u", "UINT64": "u", "INT8": "i", "INT16": "i",
    "INT32": "i", "INT64": "i", "FP16": "f", "FP32": "f", "FP64": "f", "BYTES": "O",
}  # fmt: skip
RESERVED_INPUTS = ("target_time", "entity")  # read for prediction logging, never given to the model
REQUEST_CONTENT_TYPES = (None, "pd", "np")
INPUT_CONTENT_TYPES = (None, "np", "str", "datetime")
OUTPUT = "predict"
# What each kind of feature accepts, and what to tell a client who sent something else.
_ACCEPTS = {"f": "fiu", "i": "iuf", "u": "iuf", "b": "b", "M": "O"}
_SUGGEST = {"f": "FP64 (or FP32, INT64)", "i": "INT64", "u": "INT64", "b": "BOOL",
            "M": "BYTES (ISO 8601 strings)", "O": "BYTES"}  # fmt: skip


class Parameters(BaseModel):
    """V2 `parameters`: free-form, with the `content_type` MLServer defines."""

    model_config = ConfigDict(extra="allow")
    content_type: str | None = None
    headers: dict[str, Any] | None = None


class RequestInput(BaseModel):
    """One input tensor: `data` is row-major, flat or nested as `shape`."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    """An output the client asks for (this server has one: `predict`)."""

    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}/infer` body."""

    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor (flat, row-major `data`)."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    """The answer to an inference request; `model_version` is the version that actually served it."""

    model_name: str
    model_version: str | None = None
    id: str
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    """An input or output in model metadata (`-1`: any size)."""

    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None


class MetadataModelResponse(BaseModel):
    """`GET /v2/models/{name}`."""

    name: str
    versions: list[str] = Field(default_factory=list)
    platform: str
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)
    parameters: Parameters | None = None


class MetadataServerResponse(BaseModel):
    """`GET /v2`."""

    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


@dataclass
class Decoded:
    """A decoded request: the model's input (a DataFrame, or an ndarray when there is no schema)."""

    frame: Any
    rows: int
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # reserved inputs, one value per row
    # set when `frame` is a 2-D array of these (numeric) features in the schema's order: what the hot
    # path (`maestrale.serving.fast_infer`) hands a positional model, logged without a DataFrame
    names: list[str] | None = None


# -- decoding ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _kind(dtype: str) -> str:
    # cached: pandas_dtype costs ~50 µs, called per feature per request
    try:
        return pd.api.types.pandas_dtype(dtype).kind
    except TypeError:
        return "O"


def datatype_of(dtype: str) -> str:
    """The V2 datatype of a pandas/numpy dtype: `datatype_of("float32")` → `'FP32'`."""
    kind = _kind(dtype)
    if kind in "fiu":
        return {"float16": "FP16", "float32": "FP32"}.get(dtype, "FP64") if kind == "f" else dtype.upper()
    return {"b": "BOOL"}.get(kind, "BYTES")


def _tensor(inp: RequestInput) -> np.ndarray:
    """The input's data as an array of its declared shape, after checking the values match its datatype."""
    name, dt, shape = inp.name, inp.datatype, inp.shape
    kind = _sent_kind(inp)
    ct = inp.parameters.content_type if inp.parameters else None
    if ct not in INPUT_CONTENT_TYPES:
        raise InvalidInput(
            f"input {name!r}: unsupported content_type {ct!r}; this server reads np, str and datetime"
        )
    if not shape or any(not isinstance(d, int) or d < 0 for d in shape):
        raise InvalidInput(f"input {name!r}: shape {shape} must be a list of sizes >= 0, e.g. [24]")
    expected = math.prod(shape)
    try:
        arr = np.asarray(inp.data, dtype=object if kind == "O" else None)
        if arr.dtype == object and kind in "fiu":  # nulls (NaN) or mixed values: numbers only
            if any(isinstance(v, str | bool) for v in arr.flat):
                raise TypeError
            arr = np.asarray(inp.data, dtype=np.float64)
    except ValueError:
        raise InvalidInput(
            f"input {name!r}: data is ragged; send {expected} values in row-major order, flat or nested "
            f"as shape {shape}"
        ) from None
    except TypeError:
        raise InvalidInput(f"input {name!r} is {dt} but its data holds strings or booleans") from None
    if arr.size != expected:
        raise InvalidInput(f"input {name!r}: shape {shape} needs {expected} values but data has {arr.size}")
    arr = arr.reshape(shape)
    got = arr.dtype.kind
    if kind in "fiu" and got not in "fiu":
        raise InvalidInput(f"input {name!r} is {dt} but its data holds {_what(got)}")
    if kind in "iu" and got == "f" and not _integral(arr):
        raise InvalidInput(f"input {name!r} is {dt} but its data holds non-integer values")
    if kind == "b" and got != "b" and arr.size:
        raise InvalidInput(f"input {name!r} is BOOL but its data holds {_what(got)}; send true/false")
    if kind == "O":
        if not all(isinstance(v, str) for v in arr.flat):
            raise InvalidInput(f"input {name!r} is BYTES but its data holds non-string values")
        check_strings(arr, f"input {name!r}")
    return arr


def _sent_kind(inp: RequestInput) -> str:
    kind = DATATYPES.get(inp.datatype)
    if kind is None:
        raise InvalidInput(
            f"input {inp.name!r}: unknown datatype {inp.datatype!r}; use one of {', '.join(DATATYPES)}"
        )
    return kind


def _what(kind: str) -> str:
    return {"U": "strings", "b": "booleans", "O": "mixed values"}.get(kind, "numbers")


def _integral(arr: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(arr)) and np.all(np.mod(arr, 1) == 0))


def _check_datatype(inp: RequestInput, col: ColumnSchema) -> None:
    kind, sent = _kind(col.dtype), _sent_kind(inp)
    if kind == "O":
        return  # object columns take whatever the model was trained with
    if sent not in _ACCEPTS.get(kind, "O"):
        raise InvalidInput(
            f"input {inp.name!r} is {inp.datatype} but feature {col.name!r} is {col.dtype}: "
            f"send it as {_SUGGEST.get(kind, 'BYTES')}"
        )


def _cast(values: np.ndarray, col: ColumnSchema, timezone: str | None = None) -> Any:
    """A 1-D array as the column's dtype; InvalidInput if the values do not fit it."""
    kind = _kind(col.dtype)
    try:
        if kind in "iu" and values.dtype.kind == "f" and not _integral(values):
            raise InvalidInput(f"feature {col.name!r} is {col.dtype}: its values must be whole numbers")
        if kind == "M":
            return decode_times(values, col, timezone)
        if kind == "O":
            dtype: Any = col.dtype  # pandas' stubs accept only literal dtype names
            return pd.Series(values, dtype=object).astype(dtype)
        return values.astype(col.dtype)
    except InvalidInput:
        raise  # already names the input and the fix (times, whole numbers)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"feature {col.name!r} ({col.dtype}): {exc}") from None


def decode_times(values: np.ndarray, col: ColumnSchema, timezone: str | None) -> pd.Series:
    """ISO 8601 strings as exact times in the column's zone; naive ones only if the model has a zone."""
    from maestrale.timeparse import parse_times

    fix = "send them with an offset, e.g. 2024-06-01T12:00:00+02:00 (the model has no zone for naive ones)"
    stamps = parse_times(values.tolist(), timezone=timezone, what=f"input {col.name!r}", zone_fix=fix)
    tz = getattr(pd.api.types.pandas_dtype(col.dtype), "tz", None)
    # a column without a zone gets UTC wall times, as the model was registered with
    return pd.Series(stamps.tz_convert(tz) if tz is not None else stamps.tz_convert("UTC").tz_localize(None))


def _frame(
    columns: list[ColumnSchema], values: dict[str, np.ndarray], timezone: str | None = None
) -> pd.DataFrame:
    names = [c.name for c in columns]
    dtypes = {c.dtype for c in columns}
    if len(dtypes) == 1 and _kind(columns[0].dtype) == "f":
        # All one float dtype (the usual forecasting model): one 2-D block, built and validated by
        # scikit-learn several times faster than a frame of separate columns.
        block = np.column_stack([values[n] for n in names]).astype(columns[0].dtype, copy=False)
        return pd.DataFrame(block, columns=names)
    return pd.DataFrame({c.name: _cast(values[c.name], c, timezone) for c in columns}, columns=names)


def decode_infer(
    req: InferenceRequest, columns: list[ColumnSchema] | None, timezone: str | None = None
) -> Decoded:
    """The model's input frame from a V2 request (see the module docstring for the two layouts).

    `timezone` is the zone the model reads naive times in (a feature pipeline's); without it a time
    input must carry an offset.
    """
    check_inputs(req.inputs)
    ct = req.parameters.content_type if req.parameters else None
    if ct not in REQUEST_CONTENT_TYPES:
        raise InvalidInput(
            f"unsupported request content_type {ct!r}; this server reads 'pd' (one input per feature) "
            "and 'np' (one [n, k] input)"
        )
    names = {c.name for c in columns or ()}
    is_reserved = [i.name in RESERVED_INPUTS and i.name not in names for i in req.inputs]
    features = [i for i, r in zip(req.inputs, is_reserved, strict=True) if not r]
    reserved = [i for i, r in zip(req.inputs, is_reserved, strict=True) if r]
    if not features:
        raise InvalidInput(f"no feature inputs, only {', '.join(i.name for i in reserved)}")
    if len(features) == 1 and len(features[0].shape) == 2 and (ct == "np" or features[0].name not in names):
        decoded = _decode_matrix(features[0], columns, timezone)
    elif columns is None:
        raise InvalidInput(
            "this model was registered without an input schema: send one [n, k] input with every feature"
        )
    else:
        decoded = _decode_columns(features, columns, timezone)
    for inp in reserved:
        arr = _tensor(inp).reshape(-1)
        if len(arr) != decoded.rows:
            raise InvalidInput(f"input {inp.name!r} has {len(arr)} values for {decoded.rows} rows")
        decoded.extras[inp.name] = arr
    if req.outputs and any(o.name != OUTPUT for o in req.outputs):
        bad = ", ".join(repr(o.name) for o in req.outputs if o.name != OUTPUT)
        raise InvalidInput(f"unknown output(s) {bad}: this model has one output, {OUTPUT!r}")
    return decoded


def _decode_matrix(inp: RequestInput, columns: list[ColumnSchema] | None, timezone: str | None) -> Decoded:
    arr = _tensor(inp)
    n, k = arr.shape
    if columns is None:
        return Decoded(arr, n)
    if k != len(columns):
        listed = ", ".join(c.name for c in columns)
        raise InvalidInput(
            f"input {inp.name!r} has shape {inp.shape}: {k} columns, but the model takes {len(columns)} "
            f"features in this order: {listed}"
        )
    for c in columns:
        _check_datatype(inp, c)
    return Decoded(_frame(columns, {c.name: arr[:, j] for j, c in enumerate(columns)}, timezone), n)


def _decode_columns(inputs: list[RequestInput], columns: list[ColumnSchema], timezone: str | None) -> Decoded:
    by_name = {c.name: c for c in columns}
    given = [i.name for i in inputs]
    missing = [c.name for c in columns if c.name not in given]
    unexpected = [g for g in given if g not in by_name]
    if missing or unexpected:
        parts = [f"missing feature(s): {', '.join(missing)}"] if missing else []
        parts += [f"unexpected input(s): {', '.join(unexpected)}"] if unexpected else []
        reserved = f" (and optionally {', '.join(RESERVED_INPUTS)})"
        raise InvalidInput(f"{'; '.join(parts)}; the model takes {', '.join(by_name)}{reserved}")
    if len(set(given)) != len(given):
        raise InvalidInput(
            f"input(s) sent twice: {', '.join(sorted({g for g in given if given.count(g) > 1}))}"
        )
    values, rows = {}, {}
    for inp in inputs:
        if not (len(inp.shape) == 1 or (len(inp.shape) == 2 and inp.shape[1] == 1)):
            raise InvalidInput(
                f"input {inp.name!r} has shape {inp.shape}: a feature takes [n] or [n, 1] (or send one "
                f"[n, {len(columns)}] input with every feature)"
            )
        _check_datatype(inp, by_name[inp.name])
        values[inp.name] = _tensor(inp).reshape(-1)
        rows[inp.name] = len(values[inp.name])
    if len(set(rows.values())) > 1:
        listed = ", ".join(f"{k} has {v}" for k, v in rows.items())
        raise InvalidInput(f"inputs have different lengths ({listed}): send one value per row in each")
    return Decoded(_frame(columns, values, timezone), next(iter(rows.values())))


def decode_records(
    records: list[dict[str, Any]], columns: list[ColumnSchema] | None, timezone: str | None = None
) -> Decoded:
    """The model's input frame from plain JSON records `[{feature: value, ...}, ...]`."""
    if not records:
        raise InvalidInput("records is empty: send at least one {feature: value} object")
    if columns is None:
        raise InvalidInput("this model was registered without an input schema: use /v2/models/{name}/infer")
    check_records(records, len(columns))
    names = [c.name for c in columns]
    allowed = set(names) | set(RESERVED_INPUTS)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInput(f"record {i} is not an object: send {{feature: value}} objects")
        missing = [n for n in names if n not in rec]
        unexpected = [k for k in rec if k not in allowed]
        if missing or unexpected:
            parts = [f"missing feature(s): {', '.join(missing)}"] if missing else []
            parts += [f"unexpected key(s): {', '.join(unexpected)}"] if unexpected else []
            raise InvalidInput(f"record {i}: {'; '.join(parts)}; the model takes {', '.join(names)}")
    values = {}
    for c in columns:
        column = [r[c.name] for r in records]
        inp = RequestInput(name=c.name, shape=[len(column)], datatype=_json_datatype(column, c), data=column)
        _check_datatype(inp, c)
        values[c.name] = _tensor(inp)
    extras = {}
    for key in RESERVED_INPUTS:
        if key not in names and any(key in r for r in records):
            if not all(isinstance(r.get(key), str) for r in records):
                raise InvalidInput(f"{key!r} must be a string in every record when one has it")
            extras[key] = np.asarray([r[key] for r in records], dtype=object)
            check_strings(extras[key], f"{key!r}")
    return Decoded(_frame(columns, values, timezone), len(records), extras)


def _json_datatype(values: list[Any], col: ColumnSchema) -> str:
    """The V2 datatype plain JSON values stand for (so records get the same checks as tensors)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and any(isinstance(v, str) for v in present):
        return "BYTES"
    if present and any(isinstance(v, float) for v in present):
        return "FP64"
    return "INT64" if present and _kind(col.dtype) in "iu" else "FP64"


# -- encoding ------------------------------------------------------------------------------------------
def output_array(pred: Any) -> tuple[str, np.ndarray]:
    """`predict`'s result as (V2 datatype, array of shape [n] or [n, m]): FP64/INT64/BOOL/BYTES."""
    arr = np.asarray(pred)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    elif arr.ndim > 2:
        arr = arr.reshape(len(arr), -1)
    kind = arr.dtype.kind
    if kind == "f":
        return "FP64", arr.astype(np.float64, copy=False)
    if kind in "iu":
        return "INT64", arr.astype(np.int64, copy=False)
    if kind == "b":
        return "BOOL", arr
    return "BYTES", arr.astype(str)


def encode_output(pred: Any) -> ResponseOutput:
    """`predict`'s result as the `predict` output: shape [n] (or [n, m]), FP64/INT64/BOOL/BYTES."""
    datatype, arr = output_array(pred)
    return ResponseOutput(
        name=OUTPUT, shape=list(arr.shape), datatype=datatype, parameters=Parameters(content_type="np"),
        data=arr.reshape(-1).tolist(),
    )  # fmt: skip
