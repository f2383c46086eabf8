"""`maestrale serve` and the MLServer runtime are one V2 data plane: the same requests, valid and invalid,
get the same predictions and the same 400 messages from both.

The model server runs in this process (FastAPI's TestClient); MLServer 1.7.1 runs `MaestraleRuntime`
from bench/.venv-mlserver (see test_mlserver_runtime.py) on the same SQLite registry, serving a Ridge on
the NREL features and a feature pipeline that takes raw inputs (its time as BYTES).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.integration.test_mlserver_runtime import (  # noqa: F401 - mlserver_bin is a fixture
    START_TIMEOUT_S,
    _free_port,
    _start,
    _stop,
    _tail,
    mlserver_bin,
)

pytestmark = pytest.mark.slow
IMPLEMENTATION = "maestrale.serving.mlserver_runtime.MaestraleRuntime"
RIDGE, RAW = "pv-nrel-50", "pv-raw"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registry with both models as champions, and the rows the requests send."""
    from sklearn.linear_model import Ridge

    from maestrale import Registry
    from maestrale.config import load_settings
    from maestrale.datasets import nrel_system50, pv_features
    from maestrale.training import load_spec, train
    from maestrale.training.trainer import load_for
    from maestrale.training.validate import prepare
    from tests.integration.test_serving_raw_inputs import SPEC

    root = tmp_path_factory.mktemp("parity")
    settings = load_settings(
        home=root / "home", database_url=f"sqlite:///{root}/registry.db",
        storage_url=f"file://{root}/artifacts", broker_url="memory://", bus_namespace=f"parity-{root.name}",
    )  # fmt: skip
    reg = Registry(settings=settings)
    df = nrel_system50("1h").dropna(subset=["power_kw"])
    X = pv_features(df)
    mv = reg.register(RIDGE, Ridge(alpha=1.0).fit(X, df["power_kw"]), input_example=X.head())
    reg.set_alias(RIDGE, "champion", mv.version)
    spec = load_spec(SPEC)
    result = train(spec, reg)
    reg.set_alias(RAW, "champion", result.version)
    raw = prepare(spec, load_for(spec)).raw.iloc[-24:].reset_index()
    return {"settings": settings, "root": root, "X": X.iloc[1000:1010], "raw": raw}


@pytest.fixture(scope="module")
def mlserver_url(
    mlserver_bin: Path,  # noqa: F811 - the fixture imported above
    world: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """MLServer serving both models through `MaestraleRuntime`."""
    base = tmp_path_factory.mktemp("mlserver-models")
    http = _free_port()
    server = {"host": "127.0.0.1", "http_port": http, "grpc_port": _free_port(),
              "metrics_port": _free_port(), "parallel_workers": 0, "debug": False}  # fmt: skip
    (base / "settings.json").write_text(json.dumps(server))
    root = world["root"]
    for name in (RIDGE, RAW):
        extra = {"ref": f"{name}@champion", "database_url": f"sqlite:///{root}/registry.db",
                 "storage_url": f"file://{root}/artifacts"}  # fmt: skip
        (base / name).mkdir()
        settings = {"name": name, "implementation": IMPLEMENTATION, "parameters": {"extra": extra}}
        (base / name / "model-settings.json").write_text(json.dumps(settings))
    log = base / "mlserver.log"
    proc = _start(mlserver_bin, base, log)
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(_ready(f"{url}/v2/models/{n}/ready") for n in (RIDGE, RAW)):
            assert proc.poll() is None and time.monotonic() < deadline, _tail(log.read_text(), 40)
            time.sleep(0.25)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def serve(world: dict[str, Any]) -> Iterator[Any]:
    """`maestrale serve` on the same registry, in this process."""
    from fastapi.testclient import TestClient

    from maestrale.serving import create_app

    app = create_app(world["settings"], [f"{RIDGE}@champion", f"{RAW}@champion"], log_predictions=False,
                     reload_poll_s=None)  # fmt: skip
    with TestClient(app) as client:
        yield client


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _features(X: Any) -> list[dict[str, Any]]:
    return [{"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns]


def _requests(world: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Named requests: (model, V2 body). Valid ones first, then one of each kind of mistake."""
    from tests.integration.test_serving_raw_inputs import v2_body

    X, raw = world["X"], world["raw"]
    per_feature = _features(X)
    flat = X.to_numpy().ravel().tolist()
    wrong_type = [dict(i) for i in per_feature]
    wrong_type[0] = {**wrong_type[0], "datatype": "BYTES", "data": [str(v) for v in X.iloc[:, 0]]}
    short = [dict(i) for i in per_feature]
    short[1] = {**short[1], "data": short[1]["data"][:-1]}
    naive = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in raw["time"]]  # no offset, and the model has no zone
    not_times = ["yesterday"] * len(raw)
    narrow = {"name": "x", "shape": [len(X), 1], "datatype": "FP64", "data": X.iloc[:, 0].tolist()}
    return {
        "per-feature": (RIDGE, {"inputs": per_feature[::-1]}),
        "matrix": (
            RIDGE,
            {"inputs": [{"name": "x", "shape": list(X.shape), "datatype": "FP64", "data": flat}]},
        ),
        "raw inputs, BYTES time": (RAW, v2_body(raw)),
        "missing input": (RIDGE, {"inputs": per_feature[1:]}),
        "wrong datatype": (RIDGE, {"inputs": wrong_type}),
        "shape mismatch": (RIDGE, {"inputs": short}),
        "matrix of the wrong width": (RIDGE, {"inputs": [narrow]}),
        "unknown output": (RIDGE, {"inputs": per_feature, "outputs": [{"name": "proba"}]}),
        "naive BYTES time": (RAW, v2_body(raw, naive)),
        "BYTES time that is no time": (RAW, v2_body(raw, not_times)),
    }


def test_both_servers_give_the_same_answers(serve: Any, mlserver_url: str, world: dict[str, Any]) -> None:
    from maestrale import Registry

    reg = Registry(settings=world["settings"])
    answers = {}
    for what, (model, body) in _requests(world).items():
        ours = serve.post(f"/v2/models/{model}/infer", json=body)
        theirs = httpx.post(f"{mlserver_url}/v2/models/{model}/infer", json=body, timeout=30)
        assert ours.status_code == theirs.status_code, (what, ours.text, theirs.text)
        answers[what] = ours.status_code
        if ours.status_code == 200:
            a, b = ours.json(), theirs.json()
            assert (
                a["model_version"] == b["model_version"] == str(reg.get_version(f"{model}@champion").version)
            )
            assert [(o["name"], o["datatype"], o["shape"]) for o in a["outputs"]] == [
                (o["name"], o["datatype"], o["shape"]) for o in b["outputs"]
            ]
            np.testing.assert_array_equal(a["outputs"][0]["data"], b["outputs"][0]["data"], err_msg=what)
        else:
            assert ours.json()["error"] == theirs.json()["error"], what
    assert list(answers.values()) == [200, 200, 200] + [400] * 7, answers


def test_both_servers_describe_the_model_alike(serve: Any, mlserver_url: str) -> None:
    for model in (RIDGE, RAW):
        ours = serve.get(f"/v2/models/{model}").json()
        theirs = httpx.get(f"{mlserver_url}/v2/models/{model}", timeout=10).json()
        assert [(i["name"], i["datatype"], i["shape"]) for i in ours["inputs"]] == [
            (i["name"], i["datatype"], i["shape"]) for i in theirs["inputs"]
        ]
