"""The fast skops dump: a compact schema, and the dump-time walk that spares skops' audit.

A 200-tree HistGradientBoosting used to be dumped with an indented schema (pure-Python JSON) and
then audited a second time by skops, because its loss and random generator defeated the walk.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from maestrale.errors import UnsupportedModel
from maestrale.registry.formats import deserialize, serialize
from maestrale.registry.skops_save import dumps, only_safe_types


@pytest.fixture(scope="module")
def hgb() -> tuple[HistGradientBoostingRegressor, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    model = HistGradientBoostingRegressor(max_iter=20, max_features=0.5, random_state=0)
    return model.fit(X, X[:, 0] * 2 + rng.normal(size=300)), X


def test_hgb_is_proven_safe_by_the_walk_and_round_trips(hgb):
    model, X = hgb
    assert only_safe_types(model, None)  # so `serialize` skips skops' second pass over the bytes
    ser = serialize(model)
    schema = zipfile.ZipFile(io.BytesIO(ser.data)).read("schema.json")
    assert b"\n" not in schema and json.loads(schema)["protocol"]  # compact, still a skops schema
    loaded = deserialize(ser.data, ser.format, ser.flavor)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_generator_is_judged_by_its_bit_generator(hgb):
    assert only_safe_types(np.random.default_rng(1), None)

    class Unknown(np.random.PCG64):  # a bit generator skops would name and its audit refuse
        pass

    assert not only_safe_types(np.random.Generator(Unknown(1)), None)


def test_an_untrusted_type_still_falls_back_and_is_refused(hgb):
    model = Pipeline([("f", FunctionTransformer(lambda x: x)), ("m", hgb[0])])
    assert not only_safe_types(model, None)
    with pytest.raises(UnsupportedModel, match="cannot be loaded safely"):
        serialize(model)
    assert dumps(hgb[0])[:2] == b"PK"
