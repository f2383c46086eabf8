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
from maestrale.registry.skops_save import dumps, npy_bytes, only_safe_types, stored_zip


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


ARRAYS = [
    np.arange(5.0),
    np.zeros((3, 4), order="F"),
    np.arange(12).reshape(3, 4)[:, ::2],  # neither C- nor F-contiguous: np.save writes C order
    np.array(3.0),
    np.zeros((0, 8), dtype="u1"),
    np.array(["ab", "c"]),
    np.array([True, False]),
    np.zeros(4, dtype=[("a", "u1"), ("b", "<f8")]),
    np.zeros(3, dtype=np.dtype([("a", "u1"), ("b", "<f8")], align=True)),  # padded records
    np.arange(6, dtype=">i4"),
    np.ones((2, 3), dtype="c16", order="F"),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}-{a.shape}")
def test_npy_bytes_are_np_saves(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    headers: dict = {}
    assert npy_bytes(array, headers) == buffer.getvalue()
    assert npy_bytes(array, headers) == buffer.getvalue()  # from the cached header too
    assert npy_bytes(np.array([{}]), headers) is None  # object arrays: skops' own path


def _without_ids(state):
    # skops numbers objects by id(): ephemeral ones (a dict's key types) differ between two dumps
    if isinstance(state, dict):
        return {k: _without_ids(v) for k, v in state.items() if k != "__id__"}
    if isinstance(state, list):
        return [_without_ids(v) for v in state]
    return state


def test_the_archive_holds_what_skops_writes(hgb):
    import skops.io as sio

    model, X = hgb
    ours, theirs = (zipfile.ZipFile(io.BytesIO(d)) for d in (dumps(model), sio.dumps(model)))
    assert ours.testzip() is None  # every member's CRC checks out
    assert ours.namelist() == theirs.namelist()
    for name in ours.namelist():
        if name == "schema.json":
            assert _without_ids(json.loads(ours.read(name))) == _without_ids(json.loads(theirs.read(name)))
        else:
            assert ours.read(name) == theirs.read(name), name
    # skops' own dump is untouched by the fast path, and loads as before
    theirs_model = sio.loads(sio.dumps(model), trusted=sio.get_untrusted_types(data=sio.dumps(model)))
    np.testing.assert_array_equal(theirs_model.predict(X), model.predict(X))


def test_stored_zip_is_a_zip_for_zipfile(monkeypatch):
    members = [("schema.json", b"{}"), ("é.npy", b"\x00" * 10), ("empty", b"")]
    archive = zipfile.ZipFile(io.BytesIO(stored_zip(members)))
    assert archive.testzip() is None
    assert [(i.filename, archive.read(i)) for i in archive.infolist()] == members
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)  # past it, zipfile writes the archive (ZIP64)
    archive = zipfile.ZipFile(io.BytesIO(stored_zip(members)))
    assert [(i.filename, archive.read(i)) for i in archive.infolist()] == members
