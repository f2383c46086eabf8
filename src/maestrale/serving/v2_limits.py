"""Bounds on what one V2 request may make the model server decode, hold and predict.

`MAESTRALE_SERVE_MAX_BODY_MB` bounds the bytes of a request; these bound what the bytes stand for:
shapes that agree with their data, values per request, inputs, rows of plain JSON records and the
length of BYTES elements. Each violation is an `InvalidInput` (HTTP 400) that names the input and
the limit, raised before any array is built.

>>> from maestrale.serving.v2 import InferenceRequest
>>> req = InferenceRequest.model_validate(
...     {"inputs": [{"name": "ghi", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0]}]})
>>> check_inputs(req.inputs)
Traceback (most recent call last):
maestrale.errors.InvalidInput: input 'ghi': shape [3] needs 3 values but data has 2
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.errors import InvalidInput

if TYPE_CHECKING:
    from maestrale.serving.v2 import RequestInput


@dataclass(frozen=True, slots=True)
class V2Limits:
    """What one request may ask; the defaults fit a year of quarter-hourly rows of ~50 features.

    >>> V2Limits().max_elements
    2000000
    """

    max_elements: int = 2_000_000  # values over all inputs (or rows × features of records)
    max_inputs: int = 2_048  # inputs of one request: a wider model takes one [n, k] input
    max_records: int = 100_000  # rows of one `/models/{name}/predict` request
    max_bytes_length: int = 1_024  # characters of one BYTES element (ids, timestamps, labels)
    max_name_length: int = 256  # characters of an input name


LIMITS = V2Limits()


def _name(name: str) -> str:
    # an input name is echoed in errors: a long one is cut, not sent back whole
    return repr(name if len(name) <= 40 else name[:40] + "…")


def check_inputs(inputs: Sequence[RequestInput], limits: V2Limits = LIMITS) -> None:
    """Every input's shape is sizes >= 0 agreeing with its data, and the request stays within `limits`."""
    if len(inputs) > limits.max_inputs:
        raise InvalidInput(
            f"{len(inputs):,} inputs in one request: this server takes at most {limits.max_inputs:,} "
            "(send the features of a wide model as one [n, k] input)"
        )
    total = 0
    for inp in inputs:
        name, shape = _name(inp.name), inp.shape
        if len(inp.name) > limits.max_name_length:
            raise InvalidInput(
                f"input {name}: its name has {len(inp.name):,} characters, at most "
                f"{limits.max_name_length} are allowed"
            )
        if not shape or any(d < 0 for d in shape):
            raise InvalidInput(f"input {name}: shape {shape} must be a list of sizes >= 0, e.g. [24]")
        expected = math.prod(shape)
        total += expected
        if total > limits.max_elements:
            raise InvalidInput(
                f"input {name}: shape {shape} brings the request to {total:,} values; this server takes "
                f"at most {limits.max_elements:,} per request: send fewer rows per request"
            )
        # flat data has prod(shape) values; nested data has shape[0] rows (their length is checked
        # once the array is built): anything else is refused before numpy sees it
        if len(inp.data) not in (expected, shape[0]):
            raise InvalidInput(
                f"input {name}: shape {shape} needs {expected} values but data has {len(inp.data)}"
            )


def check_strings(values: np.ndarray, what: str, limits: V2Limits = LIMITS) -> None:
    """`values` (strings) are each at most `limits.max_bytes_length` characters; `what` names them."""
    longest = max((len(v) for v in values.flat if isinstance(v, str)), default=0)
    if longest > limits.max_bytes_length:
        raise InvalidInput(
            f"{what} holds a string of {longest:,} characters: BYTES elements are at most "
            f"{limits.max_bytes_length:,} characters here"
        )


def check_records(records: Sequence[Any], features: int, limits: V2Limits = LIMITS) -> None:
    """A `/predict` request has at most `limits.max_records` rows and `limits.max_elements` values."""
    if len(records) > limits.max_records:
        raise InvalidInput(
            f"{len(records):,} records in one request: this server takes at most {limits.max_records:,} "
            "rows per request: split the request"
        )
    if len(records) * features > limits.max_elements:
        raise InvalidInput(
            f"{len(records):,} records × {features} features = {len(records) * features:,} values: this "
            f"server takes at most {limits.max_elements:,} per request: send fewer rows per request"
        )
