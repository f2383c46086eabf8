"""The binary tensor codec (REST's binary extension, gRPC's raw contents) and gRPC's request decoding.

Without a server: every datatype round-trips through raw bytes without a copy, a binary request
decodes to the same frame as its JSON twin, the output choice follows tritonclient's parameters,
gRPC's typed and raw contents agree and their mismatches are 400s, and `import maestrale.serving.app`
does not import grpc (the extra stays optional).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from maestrale.errors import InvalidInput
from maestrale.registry.types import ColumnSchema
from maestrale.serving.v2 import InferenceRequest, decode_infer
from maestrale.serving.v2_binary import (
    RAW_DTYPES,
    binary_response,
    parse_binary_request,
    tensor_bytes,
    tensor_from_bytes,
    wants_binary,
)

COLUMNS = [ColumnSchema(name="ghi", dtype="float64"), ColumnSchema(name="temp_air", dtype="float64")]


@pytest.mark.parametrize("datatype", sorted(RAW_DTYPES))
def test_every_numeric_datatype_round_trips_without_a_copy(datatype: str):
    arr = (np.arange(6) % 2 if datatype == "BOOL" else np.arange(6)).astype(RAW_DTYPES[datatype])
    raw = tensor_bytes(datatype, arr)
    back = tensor_from_bytes("x", datatype, [2, 3], raw)
    assert back.dtype == np.dtype(RAW_DTYPES[datatype]) and back.tolist() == arr.tolist()
    assert not back.flags.owndata  # a view of the request's bytes


def test_bytes_round_trip_and_are_utf8():
    arr = np.array(["plant-1", "Säntis", ""], dtype=object)
    raw = tensor_bytes("BYTES", arr)
    assert raw[:4] == (7).to_bytes(4, "little")
    assert tensor_from_bytes("entity", "BYTES", [3], raw).tolist() == ["plant-1", "Säntis", ""]


def test_a_binary_request_decodes_to_its_json_twins_frame():
    ghi, temp = np.array([500.0, 610.5, 0.0]), np.array([21.0, 22.5, 19.0])
    header = {
        "inputs": [
            {"name": "ghi", "shape": [3], "datatype": "FP64", "parameters": {"binary_data_size": 24}},
            {"name": "temp_air", "shape": [3], "datatype": "FP64", "data": temp.tolist()},
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    req = parse_binary_request(head + ghi.tobytes(), str(len(head)))
    twin = InferenceRequest.model_validate(
        {
            "inputs": [
                {"name": "ghi", "shape": [3], "datatype": "FP64", "data": ghi.tolist()},
                header["inputs"][1],
            ]
        }
    )
    assert decode_infer(req, COLUMNS).frame.equals(decode_infer(twin, COLUMNS).frame)
    assert wants_binary(req) and not wants_binary(twin)


@pytest.mark.parametrize(
    ("request_params", "output_params", "binary"),
    [
        (None, None, False), ({"binary_data_output": True}, None, True),
        ({"binary_data_output": True}, {"binary_data": False}, False), (None, {"binary_data": True}, True),
    ],
)  # fmt: skip
def test_the_output_is_binary_when_asked(request_params, output_params, binary):
    body = {"inputs": [{"name": "ghi", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    if request_params:
        body["parameters"] = request_params
    if output_params is not None:
        body["outputs"] = [{"name": "predict", "parameters": output_params}]
    assert wants_binary(InferenceRequest.model_validate(body)) is binary


def test_a_binary_response_is_header_then_raw():
    body, n = binary_response(
        {"id": "1", "outputs": [{"name": "predict", "datatype": "FP64", "shape": [2], "data": [0]}]},
        "FP64", np.array([1.5, 2.5]),
    )  # fmt: skip
    header = json.loads(body[:n])
    assert header["outputs"][0] == {"name": "predict", "datatype": "FP64", "shape": [2],
                                    "parameters": {"binary_data_size": 16}}  # fmt: skip
    assert np.frombuffer(body[n:], "<f8").tolist() == [1.5, 2.5]


def test_grpc_typed_and_raw_contents_agree_and_mismatches_are_400s():
    pytest.importorskip("grpc")
    from maestrale.serving.grpc_server import request_of
    from maestrale.serving.proto import grpc_predict_v2_pb2 as pb

    ghi = [500.0, 610.5]
    typed = pb.ModelInferRequest(model_name="pv", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="ghi", datatype="FP64", shape=[2],
                                              contents=pb.InferTensorContents(fp64_contents=ghi)),
        pb.ModelInferRequest.InferInputTensor(name="temp_air", datatype="FP64", shape=[2],
                                              contents=pb.InferTensorContents(fp64_contents=[20.0, 21.0])),
    ])  # fmt: skip
    raw = pb.ModelInferRequest(model_name="pv", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="ghi", datatype="FP64", shape=[2]),
        pb.ModelInferRequest.InferInputTensor(name="temp_air", datatype="FP64", shape=[2]),
    ], raw_input_contents=[np.array(ghi).tobytes(), np.array([20.0, 21.0]).tobytes()])  # fmt: skip
    assert decode_infer(request_of(typed), COLUMNS).frame.equals(decode_infer(request_of(raw), COLUMNS).frame)

    def fails(msg, message: str) -> None:
        with pytest.raises(InvalidInput, match=message):
            request_of(msg)

    short = pb.ModelInferRequest()
    short.CopyFrom(raw)
    del short.raw_input_contents[1]
    fails(short, "raw_input_contents has 1 tensors for 2 inputs")
    both = pb.ModelInferRequest()
    both.CopyFrom(raw)
    both.inputs[0].contents.fp64_contents.extend(ghi)
    fails(both, "has both contents and raw_input_contents")
    wrong = pb.ModelInferRequest()
    wrong.CopyFrom(typed)
    wrong.inputs[0].shape[:] = [3]
    fails(wrong, r"shape \[3\] needs 3 values but contents.fp64_contents has 2")
    half = pb.ModelInferRequest(
        inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP16", shape=[1])]
    )
    fails(half, "cannot travel in contents")
    negative = pb.ModelInferRequest()
    negative.CopyFrom(raw)
    negative.inputs[0].shape[:] = [-2]
    fails(negative, "must be a list of sizes >= 0")
    bad_param = pb.ModelInferRequest()
    bad_param.CopyFrom(typed)
    bad_param.parameters["content_type"].int64_param = 3
    fails(bad_param, "parameters: invalid request: content_type")


def test_importing_the_server_does_not_import_grpc():
    code = (
        "import sys, maestrale, maestrale.serving.app, maestrale.serving.inference\n"
        "assert 'grpc' not in sys.modules and 'google.protobuf' not in sys.modules, 'grpc imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
