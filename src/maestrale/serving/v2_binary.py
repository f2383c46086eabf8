"""The binary tensor data extension of the V2 protocol (KServe/Triton), shared by REST and gRPC.

A binary request body is a JSON header of `Inference-Header-Content-Length` bytes followed by the
raw tensors, in the order of the inputs that carry `parameters.binary_data_size` (the size of each
one's bytes). Raw tensors are row-major and little-endian; a BYTES element is a 4-byte little-endian
length followed by that many bytes (UTF-8 here). gRPC's `raw_input_contents` carry the same layout,
one buffer per input.

>>> body = b'{"inputs":[{"name":"ghi","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":16}}]}'
>>> n = len(body); body += np.array([500.0, 610.0]).tobytes()
>>> req = parse_binary_request(body, str(n))
>>> req.inputs[0].data
array([500., 610.])
>>> tensor_bytes("BYTES", np.array(["ab"], dtype=object))
b'\\x02\\x00\\x00\\x00ab'

Every size is checked against the body and the bounds of `maestrale.serving.v2_limits` before an
array is built; numeric tensors are read with `np.frombuffer` (no copy). Each mistake is an
`InvalidInput` (400, gRPC INVALID_ARGUMENT) naming the input.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, cast

import numpy as np
from pydantic import ValidationError
from pydantic_core import from_json

from maestrale.errors import InvalidInput
from maestrale.serving.dataplane import describe_errors
from maestrale.serving.v2 import InferenceRequest
from maestrale.serving.v2_limits import LIMITS, V2Limits, check_strings

HEADER = "inference-header-content-length"
SIZE = "binary_data_size"
# V2 datatype → little-endian numpy dtype of its raw bytes (BYTES is length-prefixed, handled apart)
RAW_DTYPES: dict[str, str] = {
    "BOOL": "|b1", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
    "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
_LENGTH = struct.Struct("<I")


def _quoted(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:40] + "…")


def parse_binary_request(body: bytes, header_length: str) -> InferenceRequest:
    """The request of a binary body: the JSON header's inputs, each binary one's `data` an ndarray."""
    if not header_length.strip().isdigit():
        raise InvalidInput(
            "Inference-Header-Content-Length must be the byte length of the JSON header, not "
            f"{header_length[:40]!r}"
        )
    size = int(header_length)
    if not 0 < size <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {size:,} but the body has {len(body):,} bytes: it must be "
            "the length of the JSON header at the start of the body"
        )
    try:  # pydantic's parser, as for a JSON body: a nesting bomb is a ValueError, not a RecursionError
        header = from_json(body[:size])
    except ValueError as exc:
        raise InvalidInput(f"the JSON header of the binary request is not valid JSON: {exc}") from None
    inputs = header.get("inputs") if isinstance(header, dict) else None
    if not isinstance(inputs, list):
        raise InvalidInput("the JSON header of the binary request needs an 'inputs' list")
    sizes = [_binary_size(inp, i) for i, inp in enumerate(inputs)]
    try:
        req = InferenceRequest.model_validate(header)
    except ValidationError as exc:  # the same 400 as a JSON body's
        raise InvalidInput(describe_errors(exc.errors(include_url=False))) from None
    view, offset, total = memoryview(body), size, 0
    for inp, n in zip(req.inputs, sizes, strict=True):
        if n is None:
            continue
        total = _check_shape(inp.name, inp.shape, total)
        if offset + n > len(body):
            raise InvalidInput(
                f"input {_quoted(inp.name)}: binary_data_size {n:,} runs past the end of the body "
                f"({len(body) - offset:,} bytes left)"
            )
        # an ndarray stands in for the JSON list: the codec reads `data` with np.asarray and len
        inp.data = cast(
            list[Any], tensor_from_bytes(inp.name, inp.datatype, inp.shape, view[offset : offset + n])
        )
        offset += n
    if offset != len(body):
        raise InvalidInput(
            f"{len(body) - offset:,} bytes follow the binary inputs: each binary input's "
            "parameters.binary_data_size must give its exact byte length"
        )
    return req


def _binary_size(inp: Any, index: int) -> int | None:
    """An input's `binary_data_size` (None: a JSON input); `data: []` stands in for the model check."""
    params = inp.get("parameters") if isinstance(inp, dict) else None
    if not isinstance(params, dict) or SIZE not in params:
        return None
    name = _quoted(str(inp.get("name", f"#{index}")))
    n = params[SIZE]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInput(f"input {name}: binary_data_size must be a byte count >= 0, not {str(n)[:40]!r}")
    if inp.get("data"):
        raise InvalidInput(f"input {name}: has both data and binary_data_size; send one of them")
    inp["data"] = []
    return n


def _check_shape(name: str, shape: list[int], total: int, limits: V2Limits = LIMITS) -> int:
    """The request's running count of values with this input's; 400 when a size or the total is bad."""
    if not shape or any(d < 0 for d in shape):
        raise InvalidInput(f"input {_quoted(name)}: shape {shape} must be a list of sizes >= 0, e.g. [24]")
    total += math.prod(shape)
    if total > limits.max_elements:
        raise InvalidInput(
            f"input {_quoted(name)}: shape {shape} brings the request to {total:,} values; this server "
            f"takes at most {limits.max_elements:,} per request: send fewer rows per request"
        )
    return total


def tensor_from_bytes(
    name: str, datatype: str, shape: list[int], buf: memoryview | bytes, limits: V2Limits = LIMITS
) -> np.ndarray:
    """The flat array of `buf`, raw row-major little-endian `datatype` values for `shape`."""
    _check_shape(name, shape, 0, limits)
    count = math.prod(shape)
    if datatype == "BYTES":
        return _strings(name, memoryview(buf), count, limits)
    dtype = RAW_DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"input {_quoted(name)}: unknown datatype {datatype[:20]!r}; use one of "
            f"{', '.join(RAW_DTYPES)}, BYTES"
        )
    need = count * np.dtype(dtype).itemsize
    if len(buf) != need:
        raise InvalidInput(
            f"input {_quoted(name)}: shape {shape} of {datatype} needs {need:,} bytes but "
            f"{len(buf):,} were sent"
        )
    if datatype == "BOOL" and count and np.frombuffer(buf, np.uint8).max() > 1:
        raise InvalidInput(f"input {_quoted(name)} is BOOL: each byte must be 0 or 1")
    return np.frombuffer(buf, dtype=dtype, count=count)


def _strings(name: str, buf: memoryview, count: int, limits: V2Limits) -> np.ndarray:
    """BYTES elements: `count` (4-byte little-endian length, UTF-8 bytes), filling `buf` exactly."""
    out = np.empty(count, dtype=object)
    offset, most = 0, 4 * limits.max_bytes_length  # UTF-8: at most 4 bytes per character
    for i in range(count):
        if offset + 4 > len(buf):
            raise InvalidInput(f"input {_quoted(name)}: the BYTES data ends before element {i} of {count}")
        (n,) = _LENGTH.unpack_from(buf, offset)
        if n > most or offset + 4 + n > len(buf):
            raise InvalidInput(
                f"input {_quoted(name)}: element {i} claims {n:,} bytes; {len(buf) - offset - 4:,} are left "
                f"and an element holds at most {limits.max_bytes_length:,} characters"
            )
        try:
            out[i] = bytes(buf[offset + 4 : offset + 4 + n]).decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"input {_quoted(name)}: element {i} is not UTF-8 text") from None
        offset += 4 + n
    if offset != len(buf):
        raise InvalidInput(
            f"input {_quoted(name)}: {len(buf) - offset:,} bytes follow its {count} BYTES elements"
        )
    check_strings(out, f"input {_quoted(name)}", limits)
    return out


def wants_binary(req: InferenceRequest) -> bool:
    """Whether the response's `predict` output goes in binary: its own `binary_data`, else the request's
    `binary_data_output` (what tritonclient sends by default)."""
    for out in req.outputs or ():
        extra = (out.parameters.model_extra or {}) if out.parameters else {}
        if "binary_data" in extra:
            return extra["binary_data"] is True
    extra = (req.parameters.model_extra or {}) if req.parameters else {}
    return extra.get("binary_data_output") is True


def tensor_bytes(datatype: str, arr: np.ndarray) -> bytes:
    """An output array as raw bytes (row-major little-endian; BYTES length-prefixed UTF-8)."""
    if datatype == "BYTES":
        parts = [str(v).encode() for v in arr.reshape(-1)]
        return b"".join(_LENGTH.pack(len(p)) + p for p in parts)
    return np.ascontiguousarray(arr, dtype=RAW_DTYPES[datatype]).tobytes()


def binary_response(header: dict[str, Any], datatype: str, arr: np.ndarray) -> tuple[bytes, int]:
    """(body, JSON header length) of a response whose one output is sent in binary.

    `header` is the JSON response with its output's `data` left out; `binary_data_size` is set here.
    """
    raw = tensor_bytes(datatype, arr)
    [output] = header["outputs"]
    output.pop("data", None)
    output.setdefault("parameters", {})[SIZE] = len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + raw, len(head)
