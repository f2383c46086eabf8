"""A corpus of hostile artifacts (`tests/hostile.py`), each refused with a clear error and no side effect.

Every case is tried (a) through `Registry.load` on an embedded registry, its bytes planted with the
store's API as an attacker with storage access would, (b) through the REST server, where upload +
register must be a 4xx, and (c) for code execution, through a model server start. A canary file the
payload would create must not exist afterwards. Legitimate models of every format still load with
default arguments, locally and after registration over REST.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io as sio

from maestrale import Registry
from maestrale.errors import UntrustedArtifact
from maestrale.registry.types import VersionCreate
from tests import hostile

RIDGE = "sklearn.linear_model._ridge.Ridge"
SKOPS_CASES = sorted(hostile.skops_payloads("/canary"))


def plant(reg: Registry, name: str, data: bytes, fmt: str, flavor: str) -> str:
    """Write `data` and a version pointing at it straight through the store (no serialize checks)."""
    obj = reg._blobs.put_bytes(data)
    artifact = {"key": obj.key, "sha256": obj.sha256, "size": obj.size, "format": fmt, "flavor": flavor}
    return reg._meta.create_version(name, VersionCreate(artifact=artifact)).ref


def upload(
    server, data: bytes, fmt: str, flavor: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST the bytes, then try to register them as `fmt`/`flavor`; returns the registration answer."""
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
        up = http.post("/api/v1/artifacts", content=data)
        assert up.status_code == 201, up.text
        artifact = {**up.json(), "format": fmt, "flavor": flavor}
        return http.post(
            "/api/v1/models/hostile/versions", json={"artifact": artifact}, headers=headers or {}
        )


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / f"canary-{uuid.uuid4().hex[:8]}"


# -- skops: code execution ------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["exec", "os.system", "subprocess.check_output"])
def test_payloads_are_live_under_full_trust(case, canary):
    """The corpus is real: skops told to trust everything does run these (what prefix trust allowed)."""
    data = hostile.skops_with(hostile.skops_payloads(str(canary))[case])
    # the payload runs while skops builds; the Ridge around it may then fail to build
    with contextlib.suppress(Exception):
        sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert canary.exists()


@pytest.mark.parametrize("case", SKOPS_CASES)
def test_skops_payload_refused_by_embedded_load(sqlite_registry, canary, case):
    data = hostile.skops_with(hostile.skops_payloads(str(canary))[case])
    ref = plant(sqlite_registry, "hostile", data, "skops", RIDGE)
    with pytest.raises(UntrustedArtifact, match=r"hostile:1 contains types Maestrale does not trust"):
        sqlite_registry.load(ref)
    # naming the payload's types does not help: the deny list holds even against trusted_types
    named = sio.get_untrusted_types(data=data)
    with pytest.raises(UntrustedArtifact, match="never trusted by name"):
        sqlite_registry.load(ref, trusted_types=named)
    assert not canary.exists()


@pytest.mark.parametrize("case", SKOPS_CASES)
def test_skops_payload_refused_over_rest(server, canary, case):
    data = hostile.skops_with(hostile.skops_payloads(str(canary))[case])
    resp = upload(server, data, "skops", RIDGE)
    assert resp.status_code == 400, resp.text
    assert "does not trust" in resp.json()["error"]["message"]
    named = " ".join(sio.get_untrusted_types(data=data))
    resp = upload(server, data, "skops", RIDGE, headers={"X-Maestrale-Trusted-Types": named})
    assert resp.status_code == 400 and "never trusted by name" in resp.json()["error"]["message"]
    assert not canary.exists()


def test_model_server_refuses_exec_payload_at_start(tmp_path, canary):
    from maestrale.config import load_settings
    from maestrale.serving import create_app

    settings = load_settings(
        home=tmp_path / "home", database_url=f"sqlite:///{tmp_path}/r.db",
        storage_url=f"file://{tmp_path}/artifacts", broker_url="memory://",
    )  # fmt: skip
    reg = Registry(settings=settings)
    data = hostile.skops_with(hostile.skops_payloads(str(canary))["exec"])
    ref = plant(reg, "served", data, "skops", RIDGE)
    with pytest.raises(UntrustedArtifact, match="builtins.exec"):
        create_app(settings, [ref], reload_poll_s=None)
    with pytest.raises(UntrustedArtifact, match="builtins.exec"):
        create_app(settings, [ref], reload_poll_s=None, trusted_types=["builtins.exec"])
    assert not canary.exists()


def test_running_model_server_refuses_exec_payload_on_hot_reload(tmp_path, canary):
    """The payload moved to `champion` while a server follows it: the reload fails, the old version
    keeps serving, nothing runs."""
    from sklearn.linear_model import Ridge

    from maestrale.config import load_settings
    from maestrale.serving import create_app

    settings = load_settings(
        home=tmp_path / "home", database_url=f"sqlite:///{tmp_path}/r.db",
        storage_url=f"file://{tmp_path}/artifacts", broker_url="memory://",
    )  # fmt: skip
    reg = Registry(settings=settings)
    X = np.arange(20.0).reshape(10, 2)
    good = reg.register("served", Ridge().fit(X, X.sum(axis=1)))
    reg.set_alias("served", "champion", good.version)
    app = create_app(settings, ["served@champion"], reload_poll_s=None, log_predictions=False)
    repo = app.state.repository
    payload = hostile.skops_with(hostile.skops_payloads(str(canary))["exec"])
    hostile_ref = plant(reg, "served", payload, "skops", RIDGE)
    reg.set_alias("served", "champion", int(hostile_ref.split(":")[1]))
    with pytest.raises(UntrustedArtifact, match="builtins.exec"):
        repo.reload("served").result(timeout=30)
    assert repo.get("served").version == good.version
    assert not canary.exists()
    repo.close()


# -- pickle, ONNX ---------------------------------------------------------------------------------
def test_pickle_is_never_loaded_without_full_trust(sqlite_registry, server, canary):
    data = hostile.pickle_payload(str(canary))
    ref = plant(sqlite_registry, "pickled", data, "pickle", "tests.hostile._Reduce")
    with pytest.raises(UntrustedArtifact, match="pickled:1 is a pickle"):
        sqlite_registry.load(ref)
    ref = plant(sqlite_registry, "disguised", data, "skops", RIDGE)
    with pytest.raises(UntrustedArtifact, match="not a readable skops archive"):
        sqlite_registry.load(ref)
    disguised = upload(server, data, "skops", RIDGE)
    assert disguised.status_code == 400 and "the bytes are a pickle" in disguised.text
    declared = upload(server, data, "pickle", "tests.hostile._Reduce")
    assert declared.status_code == 201, declared.text  # stored as what it is
    remote = Registry(server.url, token=server.admin_token)
    with pytest.raises(UntrustedArtifact, match="is a pickle"):
        remote.load("hostile:1")
    assert not canary.exists()


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd"])
def test_onnx_external_data_refused(sqlite_registry, server, location):
    pytest.importorskip("onnxruntime")
    data = hostile.onnx_external(location)
    ref = plant(sqlite_registry, "onnx-ext", data, "onnx", "onnx.onnx_ml_pb2.ModelProto")
    with pytest.raises(UntrustedArtifact, match=f"reads external file '{location}'"):
        sqlite_registry.load(ref)
    resp = upload(server, data, "onnx", "onnx.onnx_ml_pb2.ModelProto")
    assert resp.status_code == 400 and "external file" in resp.json()["error"]["message"]


# -- LightGBM, XGBoost ----------------------------------------------------------------------------
LGB = pytest.importorskip("lightgbm")
XGB = pytest.importorskip("xgboost")
LGB_CASES = hostile.lightgbm_variants()
XGB_CASES = hostile.xgboost_variants()


@pytest.mark.parametrize("case", sorted(LGB_CASES))
def test_malformed_lightgbm_refused(sqlite_registry, server, case):
    ref = plant(sqlite_registry, "lgb", LGB_CASES[case], "lightgbm", "lightgbm.basic.Booster")
    with pytest.raises(UntrustedArtifact, match=r"lgb:1 is a malformed lightgbm model"):
        sqlite_registry.load(ref)
    resp = upload(server, LGB_CASES[case], "lightgbm", "lightgbm.basic.Booster")
    assert resp.status_code == 400 and "malformed" in resp.json()["error"]["message"]


@pytest.mark.parametrize("case", sorted(XGB_CASES))
def test_malformed_xgboost_refused(sqlite_registry, server, case):
    ref = plant(sqlite_registry, "xgb", XGB_CASES[case], "xgboost", "xgboost.sklearn.XGBRegressor")
    with pytest.raises(UntrustedArtifact, match=r"xgb:1 is a malformed xgboost model"):
        sqlite_registry.load(ref)
    resp = upload(server, XGB_CASES[case], "xgboost", "xgboost.sklearn.XGBRegressor")
    assert resp.status_code == 400 and "malformed" in resp.json()["error"]["message"]


_CHILD = """
import sys, numpy as np
data = open(sys.argv[2], "rb").read()
if sys.argv[1] == "lightgbm":
    import lightgbm
    model = lightgbm.Booster(model_str=data.decode())
else:
    import xgboost
    model = xgboost.XGBRegressor(); model.load_model(bytearray(data))
model.predict(np.zeros((3, 4)))
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["lightgbm", "xgboost"])
def test_every_truncation_the_check_accepts_is_safe_natively(tmp_path, fmt):
    """Cut a real model at 50 points: what the check lets through never kills the process natively."""
    from maestrale.registry.native_checks import check_lightgbm, check_xgboost

    data = hostile.lightgbm_text().encode() if fmt == "lightgbm" else hostile.xgboost_model()[0]
    check = check_lightgbm if fmt == "lightgbm" else check_xgboost
    accepted = []
    for cut in np.linspace(1, len(data), 50).astype(int):
        try:
            check(data[:cut], "cut")
        except UntrustedArtifact:
            continue
        accepted.append(int(cut))
    assert len(data) in accepted  # the whole model passes
    for cut in accepted:
        path = tmp_path / f"cut-{cut}"
        path.write_bytes(data[:cut])
        run = subprocess.run([sys.executable, "-c", _CHILD, fmt, str(path)], capture_output=True, timeout=60)
        assert run.returncode in (0, 1), f"cut at {cut}/{len(data)} killed {fmt}: {run.returncode}"


# -- scikit-learn trees with out-of-bounds node arrays -------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        lambda: hostile.tampered_tree("left_child", 10**8),
        lambda: hostile.tampered_tree("right_child", 0),  # a cycle: predict would never return
        lambda: hostile.tampered_tree("feature", 10**8),
        lambda: hostile.tampered_hgb("left", 10**6),
        lambda: hostile.tampered_hgb("feature_idx", 10**6),
        hostile.tampered_kdtree,
    ],
    ids=["tree-left", "tree-cycle", "tree-feature", "hgb-left", "hgb-feature", "kdtree-index"],
)
def test_tree_arrays_out_of_bounds_refused(sqlite_registry, server, build):
    data = build()
    schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    flavor = f"{schema['__module__']}.{schema['__class__']}"
    ref = plant(sqlite_registry, "trees", data, "skops", flavor)
    with pytest.raises(UntrustedArtifact, match=r"the artifact of trees:1 is malformed"):
        sqlite_registry.load(ref)
    resp = upload(server, data, "skops", flavor)
    assert resp.status_code == 400 and "malformed" in resp.json()["error"]["message"]


# -- declared metadata, missing objects, repair --------------------------------------------------------
def test_declared_metadata_must_match_the_bytes(server):
    data = hostile.ridge_archive()
    wrong_format = upload(server, data, "lightgbm", "lightgbm.basic.Booster")
    assert wrong_format.status_code == 400
    assert "declared format 'lightgbm', but the bytes are a skops archive" in wrong_format.text
    forest = "sklearn.ensemble._forest.RandomForestRegressor"
    wrong_flavor = upload(server, data, "skops", forest)
    assert wrong_flavor.status_code == 400
    assert f"declared flavor '{forest}', but the bytes hold a {RIDGE}" in wrong_flavor.text
    xgb = upload(server, hostile.xgboost_model()[0], "xgboost", "os.system")
    assert xgb.status_code == 400 and "declared flavor 'os.system'" in xgb.text
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
        up = http.post("/api/v1/artifacts", content=data).json()
        bad = {"skops\u00e9": "format", "sklearn.Ridge\u00e9": "flavor", up["size"] + 1: "size"}
        for value, field in bad.items():
            artifact = {**up, "format": "skops", "flavor": RIDGE, field: value}
            resp = http.post("/api/v1/models/meta/versions", json={"artifact": artifact})
            assert resp.status_code == 400, (field, resp.text)
        good = http.post(
            "/api/v1/models/meta/versions", json={"artifact": {**up, "format": "skops", "flavor": RIDGE}}
        )
        assert good.status_code == 201, good.text
        assert http.get("/api/v1/models/meta/versions/1/artifact").headers["x-artifact-format"] == "skops"


def test_unknown_object_is_a_404(server, tmp_path):
    from maestrale.errors import ArtifactMissing

    auth = {"Authorization": f"Bearer {server.admin_token}"}
    resp = httpx.get(f"{server.url}/api/v1/artifacts/{'ab' * 32}", headers=auth)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "artifact_missing"
    remote = Registry(server.url, token=server.admin_token)
    with pytest.raises(ArtifactMissing, match="missing on the server"):
        remote._blobs.get_bytes(f"objects/sha256/ab/{'ab' * 32}", "ab" * 32, "nothing:1")
    mv = remote.register("gone", __import__("sklearn.linear_model").linear_model.Ridge())
    (server.home / "artifacts" / mv.artifact.key).unlink()
    with pytest.raises(ArtifactMissing):
        remote.load(mv.ref)
    check = remote.verify(mv.ref)
    assert not check.ok and check.sha256_actual is None and "missing" in check.detail


@pytest.mark.parametrize("damage", ["flip", "truncate", "pad"])
@pytest.mark.parametrize("how", ["bytes", "file"])
def test_reupload_repairs_a_corrupted_object(tmp_path, damage, how):
    from maestrale.registry.artifacts import ArtifactStore

    store = ArtifactStore(f"file://{tmp_path}/objects")
    data = hostile.ridge_archive()
    obj = store.put_bytes(data)
    path = Path(store._path(obj.key))
    bad = {"flip": data[:-1] + bytes([data[-1] ^ 1]), "truncate": data[:10], "pad": data + b"\0"}[damage]
    path.write_bytes(bad)
    again = store.put_bytes(data) if how == "bytes" else store.put_file(io.BytesIO(data))
    assert again == obj and path.read_bytes() == data
    inode = path.stat().st_ino
    store.put_bytes(data)  # intact now: the fast path leaves the file in place
    assert path.stat().st_ino == inode
    assert store.get_bytes(obj.key, obj.sha256, "repaired:1") == data
