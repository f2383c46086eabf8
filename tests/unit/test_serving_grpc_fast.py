"""The gRPC hot path (`_raw_positional`): the general path's array, to the bit, or None for the rest.

Every request below is decoded twice: by the hot path, straight from the protobuf message, and by
the general one (`request_of`, then `positional_decode` or the general codec). The hot path must give
the same array and logging parameters, or None (the general path then answers: a 400 keeps its
words); it must never accept what the general path refuses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from maestrale.errors import InvalidInput
from tests.unit.test_serving_fast_infer import COLUMNS, served_model

pytest.importorskip("grpc")
from maestrale.serving.fast_infer import positional_decode
from maestrale.serving.grpc_server import _raw_positional, request_of
from maestrale.serving.proto import grpc_predict_v2_pb2 as pb
from maestrale.serving.v2_binary import RAW_DTYPES as RAW

ROWS = np.array([[512.5, 21.25, 13.0], [0.0, -3.5, 2.0], [1e-9, 40.0, 23.0]])


def message(
    names: list[str] = COLUMNS, datatype: str = "FP64", rows: np.ndarray = ROWS,
    params: dict[str, Any] | None = None, **fields: Any,
) -> Any:  # fmt: skip
    """One `[n]` raw input per name (column j of `rows`), as tritonclient.grpc sends them."""
    msg = pb.ModelInferRequest(model_name="m", **fields)
    for name in names:
        j = COLUMNS.index(name) if name in COLUMNS else 0
        msg.inputs.add(name=name, datatype=datatype, shape=[len(rows)])
        msg.raw_input_contents.append(np.ascontiguousarray(rows[:, j]).astype(RAW[datatype]).tobytes())
    for key, value in (params or {}).items():
        param = msg.parameters[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            param.int64_param = value
        else:
            param.string_param = value
    return msg


def general(served: Any, msg: Any) -> tuple[np.ndarray, dict[str, Any]] | None:
    """What the servicer did before the hot path: the V2 request model, then the JSON hot path."""
    req = request_of(msg)
    extra = (req.parameters.model_extra or {}) if req.parameters else {}
    inputs = [(i.name, i.shape, i.datatype, i.parameters, i.data) for i in req.inputs]
    decoded = positional_decode(served, inputs, req.parameters.content_type if req.parameters else None)
    return None if decoded is None else (decoded.frame, extra)


def matrix(datatype: str = "FP64", shape: tuple[int, int] = (3, 3), **params: Any) -> Any:
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="input-0", datatype=datatype, shape=list(shape))
    msg.raw_input_contents.append(ROWS.reshape(-1)[: shape[0] * shape[1]].astype(RAW[datatype]).tobytes())
    for key, value in params.items():
        msg.parameters[key].string_param = value
    return msg


@pytest.mark.parametrize(
    "msg",
    [
        message(),  # the schema's order: the joined-bytes block
        message(list(reversed(COLUMNS))),  # another order: column by column
        message(datatype="FP32"),
        message(datatype="INT64"),
        message(datatype="FP16"),
        message(datatype="UINT8", rows=np.abs(ROWS).round() % 255),
        message(rows=ROWS[:0]),  # no rows
        message(params={"content_type": "pd", "entity": "plant-7", "issued_at": "2012-06-01T18:00:00Z"}),
        message(params={"content_type": "np"}),
        message(outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict")]),
        matrix(),
        matrix("FP32", (1, 3), content_type="np"),
    ],
    ids=lambda m: (
        f"{len(m.inputs)}x{m.inputs[0].datatype}{list(m.inputs[0].shape)}{dict(m.parameters)!r:.40}"
    ),
)
def test_the_same_array_and_parameters_as_the_general_path(msg: Any) -> None:
    served = served_model()
    fast, slow = _raw_positional(served, msg), general(served, msg)
    assert fast is not None and slow is not None
    assert fast[0].frame.dtype == slow[0].dtype and fast[0].frame.flags.f_contiguous
    np.testing.assert_array_equal(fast[0].frame, slow[0])
    assert fast[1] == slow[1] and fast[0].names == COLUMNS and fast[0].rows == len(slow[0])
    if len(slow[0]):  # column-major, as the general path's block: the same predictions to the bit
        np.testing.assert_array_equal(served.predict(fast[0].frame), served.predict(slow[0]))


def _short(msg: Any) -> Any:
    msg.raw_input_contents[1] = msg.raw_input_contents[1][:-1]
    return msg


def _typed(msg: Any) -> Any:
    msg.inputs[0].contents.fp64_contents.extend([1.0, 2.0, 3.0])
    return msg


def _input_param(msg: Any) -> Any:
    msg.inputs[2].parameters["content_type"].string_param = "np"
    return msg


@pytest.mark.parametrize(
    ("msg", "refused"),
    [
        (_short(message()), "needs 24 bytes but 23 were sent"),  # a byte short: the general 400
        (_typed(message()), "has both contents and raw_input_contents"),
        (message(COLUMNS[:2]), None),  # a feature short: the general codec names it
        (message([*COLUMNS[:2], "ghi"]), None),  # a repeated name
        (message(["ghi", "temp", "x" * 300]), None),
        (message(datatype="BOOL", rows=ROWS != 0), None),  # BOOL: the general path checks its bytes
        (message(params={"entity": 7}), None),  # not a string: the general path decides
        (message(params={"content_type": "json"}), None),
        (message(params={"binary_data_output": True}), None),
        (message(outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="proba")]), None),
        (_input_param(message()), None),
        (matrix(shape=(3, 2)), None),  # [n, k] of the wrong width
        (pb.ModelInferRequest(model_name="m"), "no inputs"),
    ],
)
def test_anything_unusual_is_left_to_the_general_path(msg: Any, refused: str | None) -> None:
    served = served_model()
    assert _raw_positional(served, msg) is None
    if refused is not None:  # the general path refuses it, with its message
        with pytest.raises(InvalidInput, match=refused):
            request_of(msg)


def test_a_shape_past_the_element_bound_is_never_read() -> None:
    msg = message()
    for t in msg.inputs:
        del t.shape[:]
        t.shape.append(2**40)  # the bytes do not follow: never allocate for a claimed size
    assert _raw_positional(served_model(), msg) is None
    with pytest.raises(InvalidInput, match="at most"):
        request_of(msg)


def test_a_shape_of_many_dims_is_left_to_the_general_path() -> None:
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="input-0", datatype="FP64", shape=[1] * 100_000)  # 1 value, 100,000 dims
    msg.raw_input_contents.append(np.float64(1.0).tobytes())
    assert _raw_positional(served_model(), msg) is None


def test_models_off_the_hot_path_are_left_to_the_general_codec() -> None:
    assert _raw_positional(served_model(positional=False), message()) is None
    assert _raw_positional(served_model(dtype="int64"), message()) is None
