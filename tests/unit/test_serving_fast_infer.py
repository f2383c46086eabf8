"""The hot path's decoder: the same array as the general codec, and None for whatever it leaves to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from maestrale.registry.types import ColumnSchema
from maestrale.serving.fast_infer import json_inputs, positional_decode
from maestrale.serving.repository import ServedModel
from maestrale.serving.v2 import InferenceRequest, decode_infer

COLUMNS = ["ghi", "temp", "hour"]


def served_model(positional: bool = True, dtype: str = "float64") -> ServedModel:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 3)), columns=COLUMNS)
    model = Ridge().fit(X, X.sum(axis=1))
    columns = [ColumnSchema(name=c, dtype=dtype) for c in COLUMNS]
    return ServedModel("m", 1, "0" * 64, model, None, columns, None, 0.0, positional=positional)  # type: ignore[arg-type]


def per_feature(rows: list[list[float]], **extra: object) -> dict[str, object]:
    data = np.asarray(rows).T.tolist()
    inputs = [
        {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": d}
        for c, d in zip(COLUMNS, data, strict=True)
    ]
    return {"inputs": inputs, **extra}


@pytest.mark.parametrize(
    "body",
    [
        per_feature([[1.5, 2.0, 3.0], [4.0, 5.0, 6.25]]),
        per_feature([[1, 2, 3]], parameters={"content_type": "pd", "entity": "p1"}),
        {
            "inputs": [
                {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [[1.0, 2.0, 3.0], [4, 5, 6]]}
            ]
        },
        {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4, 5, 6]}]},
    ],
)
def test_the_same_array_and_predictions_as_the_general_codec(body: dict) -> None:
    served = served_model()
    parsed = json_inputs(body)
    assert parsed is not None
    fast = positional_decode(served, parsed.inputs, parsed.content_type)
    general = decode_infer(InferenceRequest.model_validate(body), served.columns)
    assert fast is not None and fast.names == COLUMNS and fast.rows == general.rows
    np.testing.assert_array_equal(fast.frame, general.frame.to_numpy())
    # column-major, as the DataFrame's block: the same predictions to the bit
    np.testing.assert_array_equal(served.predict(fast.frame), served.model.predict(general.frame))


@pytest.mark.parametrize(
    "body",
    [
        per_feature([[1.0, None, 3.0]]),  # null: NaN handling is the general codec's
        per_feature([[1.0, "2", 3.0]]),  # a string among numbers
        {"inputs": per_feature([[1.0, 2.0, 3.0]])["inputs"][:2]},  # a missing feature
        per_feature([[1.0, 2.0, 3.0]], outputs=[{"name": "predict", "parameters": {"binary_data": True}}]),
        per_feature([[1.0, 2.0, 3.0]], parameters={"binary_data_output": True}),
        {"inputs": [{**i, "datatype": "INT64"} for i in per_feature([[1.5, 2.0, 3.0]])["inputs"]]},
        {"inputs": [{**i, "shape": [2]} for i in per_feature([[1.0, 2.0, 3.0]])["inputs"]]},
        {
            "inputs": [
                {**i, "parameters": {"content_type": "np"}} for i in per_feature([[1.0, 2.0, 3.0]])["inputs"]
            ]
        },
        per_feature([[1.0, 2.0, 3.0]], unknown=1),
    ],
)
def test_anything_unusual_is_left_to_the_general_codec(body: dict) -> None:
    parsed = json_inputs(body)
    assert parsed is None or positional_decode(served_model(), parsed.inputs, parsed.content_type) is None


def test_only_positional_models_with_one_float_dtype() -> None:
    parsed = json_inputs(per_feature([[1.0, 2.0, 3.0]]))
    assert parsed is not None
    assert positional_decode(served_model(positional=False), parsed.inputs, None) is None
    assert positional_decode(served_model(dtype="int64"), parsed.inputs, None) is None
