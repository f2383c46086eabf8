"""The registry on real object stores: Azure Blob (Azurite) and S3 (moto server)."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from maestrale import Registry
from maestrale.errors import ArtifactMissing, BackendUnavailable, IntegrityError
from tests.services import azurite_connection_string, free_port


@pytest.fixture(params=["azure", "s3"])
def blob_registry(request, tmp_path):
    loc = request.getfixturevalue("azure_container" if request.param == "azure" else "s3_bucket")
    options = dict(loc.storage_options)
    if request.param == "azure":
        options["retry_total"] = 1
    reg = Registry(
        database_url=f"sqlite:///{tmp_path}/r.db",
        storage_url=loc.path("models/prod"),
        storage_options=options,
    )
    return reg


def test_register_load_verify_gc_on_object_storage(blob_registry, regression_data):
    X, y = regression_data
    reg = blob_registry
    model = Ridge(alpha=2.0).fit(X, y)
    mv = reg.register("pv-blob", model, metrics={"nmae": 0.05}, input_example=X.head())
    reg.set_alias("pv-blob", "champion", mv.version)
    np.testing.assert_allclose(reg.load("pv-blob").predict(X), model.predict(X))
    assert reg.verify(mv.ref).ok
    key = f"{reg._blobs.root}/{mv.artifact.key}"
    assert reg._blobs.fs.exists(key)
    orphan = reg._blobs.put_bytes(b"uploaded but never registered")
    assert reg.gc(grace=timedelta(0)) == [orphan.key]
    assert reg.verify(mv.ref).ok
    # a large artifact goes through multipart / staged blocks
    big = {"blob": np.random.default_rng(0).bytes(9 << 20)}
    mv_big = reg.register("pv-blob-big", big, format="pickle")
    assert reg.load(mv_big.ref, trusted=True) == big


def test_corrupted_and_missing_objects_are_refused(blob_registry, regression_data):
    X, y = regression_data
    reg = blob_registry
    mv = reg.register("pv-corrupt", Ridge().fit(X, y))
    path = f"{reg._blobs.root}/{mv.artifact.key}"
    reg._blobs.fs.pipe_file(path, b"tampered bytes")
    with pytest.raises(IntegrityError, match="pv-corrupt:1 is corrupted"):
        reg.load(mv.ref)
    reg._blobs.fs.rm_file(path)
    with pytest.raises(ArtifactMissing, match=f"pv-corrupt:1 is missing: object {mv.artifact.key}"):
        reg.load(mv.ref)
    assert not reg.verify(mv.ref).ok


def test_unreachable_azure_fails_fast_with_a_clear_error(tmp_path):
    dead = azurite_connection_string("127.0.0.1", free_port())
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot reach storage 'abfs://models/prod'"):
        Registry(
            database_url=f"sqlite:///{tmp_path}/r.db",
            storage_url="abfs://models/prod",
            storage_options={"connection_string": dead, "retry_total": 1, "connection_timeout": 1},
        )
    assert time.monotonic() - start < 15
