"""The V2 codec: tensors ↔ the model's DataFrame, and every client mistake named precisely."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maestrale.errors import InvalidInput
from maestrale.registry.types import ColumnSchema
from maestrale.serving.v2 import (
    InferenceRequest,
    datatype_of,
    decode_infer,
    decode_records,
    encode_output,
)

SCHEMA = [
    ColumnSchema(name="ghi", dtype="float64"),
    ColumnSchema(name="hour", dtype="int64"),
    ColumnSchema(name="clear", dtype="bool"),
]


def request(*inputs: dict, **extra) -> InferenceRequest:
    return InferenceRequest.model_validate({"inputs": list(inputs), **extra})


def tensor(name: str, data: list, datatype: str = "FP64", shape: list[int] | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


GOOD = (
    tensor("ghi", [500.0, 610.5]),
    tensor("hour", [11, 12], "INT64"),
    tensor("clear", [True, False], "BOOL"),
)


def test_one_input_per_feature_builds_the_frame_in_schema_order_and_dtypes():
    req = request(GOOD[2], GOOD[0], GOOD[1], parameters={"content_type": "pd"})  # any input order
    frame = decode_infer(req, SCHEMA).frame
    assert list(frame.columns) == ["ghi", "hour", "clear"]
    assert [str(t) for t in frame.dtypes] == ["float64", "int64", "bool"]
    assert frame["ghi"].tolist() == [500.0, 610.5] and frame["hour"].tolist() == [11, 12]


def test_n_by_1_shapes_nested_data_and_integers_for_a_float_feature():
    req = request(
        tensor("ghi", [[500], [610]], "INT32", [2, 1]), GOOD[1], GOOD[2],
    )  # fmt: skip
    frame = decode_infer(req, SCHEMA).frame
    assert frame["ghi"].dtype == np.float64 and frame["ghi"].tolist() == [500.0, 610.0]


def test_one_2d_input_follows_the_schema_columns_flat_or_nested():
    schema = [ColumnSchema(name="ghi", dtype="float64"), ColumnSchema(name="temp_air", dtype="float64")]
    for data in ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]):
        frame = decode_infer(request(tensor("input-0", data, "FP32", [3, 2])), schema).frame
        assert frame.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
        assert list(frame.columns) == ["ghi", "temp_air"] and frame["ghi"].dtype == np.float64


def test_reserved_inputs_are_read_for_logging_not_given_to_the_model():
    times = ["2012-06-01T12:00:00Z", "2012-06-01T13:00:00Z"]
    req = request(*GOOD, tensor("target_time", times, "BYTES"), tensor("entity", ["p1", "p2"], "BYTES"))
    decoded = decode_infer(req, SCHEMA)
    assert list(decoded.frame.columns) == ["ghi", "hour", "clear"]
    assert decoded.extras["target_time"].tolist() == times and decoded.extras["entity"].tolist() == [
        "p1",
        "p2",
    ]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (GOOD[:2], "missing feature(s): clear; the model takes ghi, hour, clear"),
        ((*GOOD, tensor("tmp", [1.0, 2.0])), "unexpected input(s): tmp"),
        ((tensor("ghi", ["500", "610"], "BYTES"), *GOOD[1:]),
         "input 'ghi' is BYTES but feature 'ghi' is float64: send it as FP64"),
        ((tensor("ghi", [1.0, 2.0], "FLOAT64"), *GOOD[1:]), "input 'ghi': unknown datatype 'FLOAT64'"),
        ((tensor("ghi", [1.0, 2.0, 3.0], shape=[2]), *GOOD[1:]), "shape [2] needs 2 values but data has 3"),
        ((tensor("ghi", [1.0, 2.0, 3.0]), *GOOD[1:]), "inputs have different lengths (ghi has 3, hour has 2"),
        ((tensor("ghi", ["a", "b"]), *GOOD[1:]), "input 'ghi' is FP64 but its data holds strings"),
        ((tensor("ghi", [1.0, "b"]), *GOOD[1:]), "input 'ghi' is FP64 but its data holds strings"),
        ((GOOD[0], tensor("hour", [1.5, 2.0], "FP64"), GOOD[2]), "'hour' is int64: its values must be whole"),
        ((*GOOD[:2], tensor("clear", [1, 0], "INT64")), "input 'clear' is INT64 but feature 'clear' is bool"),
        ((tensor("ghi", [[1.0, 2.0], [3.0]], shape=[2, 1]), *GOOD[1:]), "input 'ghi': data is ragged"),
        ((tensor("ghi", [1.0, 2.0, 3.0, 4.0], shape=[2, 2]), *GOOD[1:]), "a feature takes [n] or [n, 1]"),
        ((tensor("x", [1.0] * 4, shape=[2, 2]),), "shape [2, 2]: 2 columns, but the model takes 3"),
        ((GOOD[0], GOOD[0], *GOOD[1:]), "input(s) sent twice: ghi"),
        ((*GOOD, tensor("target_time", ["2012-06-01T12Z"], "BYTES")), "has 1 values for 2 rows"),
    ],
)  # fmt: skip
def test_client_mistakes_name_the_input_and_the_fix(inputs, message):
    with pytest.raises(InvalidInput) as exc:
        decode_infer(request(*inputs), SCHEMA)
    assert message in exc.value.message


def test_unsupported_content_types_and_outputs_are_refused():
    with pytest.raises(InvalidInput, match="unsupported request content_type 'pd_json'"):
        decode_infer(request(*GOOD, parameters={"content_type": "pd_json"}), SCHEMA)
    base64 = {**GOOD[0], "parameters": {"content_type": "base64"}}
    with pytest.raises(InvalidInput, match="input 'ghi': unsupported content_type 'base64'"):
        decode_infer(request(base64, *GOOD[1:]), SCHEMA)
    with pytest.raises(InvalidInput, match="unknown output.*'proba'.*one output, 'predict'"):
        decode_infer(request(*GOOD, outputs=[{"name": "proba"}]), SCHEMA)


def test_a_model_without_schema_takes_one_2d_tensor_as_an_array():
    decoded = decode_infer(request(tensor("x", [1, 2, 3, 4], "INT64", [2, 2])), None)
    assert isinstance(decoded.frame, np.ndarray) and decoded.frame.shape == (2, 2)
    with pytest.raises(InvalidInput, match="without an input schema"):
        decode_infer(request(GOOD[0]), None)


def test_datetime_and_string_features_come_from_bytes():
    schema = [ColumnSchema(name="t", dtype="datetime64[ns, UTC]"), ColumnSchema(name="site", dtype="str")]
    req = request(tensor("t", ["2012-06-01T12:00:00+02:00"], "BYTES"), tensor("site", ["p50"], "BYTES"))
    frame = decode_infer(req, schema).frame
    assert frame["t"].iloc[0] == pd.Timestamp("2012-06-01T10:00:00Z")
    assert frame["site"].tolist() == ["p50"]


def test_records_get_the_same_checks_as_tensors():
    records = [{"ghi": 500, "hour": 11, "clear": True}, {"ghi": 610.5, "hour": 12, "clear": False}]
    frame = decode_records(records, SCHEMA).frame
    assert frame["ghi"].tolist() == [500.0, 610.5] and str(frame["hour"].dtype) == "int64"
    with pytest.raises(InvalidInput, match="record 1: missing feature.*clear; unexpected key.*clr"):
        decode_records([records[0], {"ghi": 1.0, "hour": 1, "clr": True}], SCHEMA)
    with pytest.raises(InvalidInput, match="input 'ghi' is BYTES but feature 'ghi' is float64"):
        decode_records([{**records[0], "ghi": "high"}], SCHEMA)


def test_outputs_are_flat_row_major_with_their_shape():
    out = encode_output(np.array([1.5, np.nan]))
    assert (out.name, out.datatype, out.shape) == ("predict", "FP64", [2])
    assert (
        out.model_dump_json(exclude_none=True).count("null") == 1
    )  # NaN travels as JSON null, never as invalid JSON
    quantiles = encode_output(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    assert quantiles.shape == [2, 3] and quantiles.data == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert encode_output(np.array(["on", "off"])).datatype == "BYTES"
    assert [datatype_of(d) for d in ("float64", "float32", "int64", "bool", "str")] == [
        "FP64", "FP32", "INT64", "BOOL", "BYTES",
    ]  # fmt: skip
