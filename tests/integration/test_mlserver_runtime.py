"""MaestraleRuntime inside a real MLServer 1.7.1 (`mlserver start`), from bench/.venv-mlserver.

MLServer pins fastapi<0.116 and protobuf<7, so it lives in its own venv, created by
bench/setup_mlserver.sh when missing (about a minute and 750 MB; the test skips, saying what failed,
when that venv cannot be made). The model is a Ridge on the NREL system 50 PV features, registered
in a SQLite registry under tmp_path; MLServer loads it by reference (`pv-nrel-50@champion`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "bench" / "setup_mlserver.sh"
VENV = REPO / "bench" / ".venv-mlserver"
MLSERVER = VENV / "bin" / "mlserver"
SETUP_TIMEOUT_S = 900
START_TIMEOUT_S = 90
NAME = "pv-nrel-50"
IMPLEMENTATION = "maestrale.serving.mlserver_runtime.MaestraleRuntime"


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


@pytest.fixture(scope="module")
def mlserver_bin() -> Path:
    """`mlserver` from bench/.venv-mlserver, via the setup script (idempotent: it makes the venv when
    missing, tops it up when pyproject.toml changed, else does nothing); a skip naming what failed."""
    try:
        proc = subprocess.run(
            ["bash", str(SETUP)],
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"bash {SETUP} did not finish in {SETUP_TIMEOUT_S} s: MLServer 1.7.1 not installed")
    if proc.returncode != 0 or not MLSERVER.exists():
        pytest.skip(
            f"bash {SETUP} exited {proc.returncode}, so MLServer 1.7.1 is not installed:\n"
            + _tail(proc.stdout + proc.stderr)
        )
    return MLSERVER


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory):
    """Two Ridge versions of `pv-nrel-50` in a SQLite registry; champion -> version 2."""
    from sklearn.linear_model import Ridge

    from maestrale import Registry
    from maestrale.datasets import nrel_system50, pv_features

    root = tmp_path_factory.mktemp("mlserver-registry")
    df = nrel_system50("1h").dropna(subset=["power_kw"])
    X, y = pv_features(df), df["power_kw"]
    reg = Registry(database_url=f"sqlite:///{root}/registry.db", storage_url=f"file://{root}/artifacts")
    reg.register(NAME, Ridge(alpha=10.0).fit(X, y), input_example=X.head())
    model = Ridge(alpha=1.0).fit(X, y)
    mv = reg.register(NAME, model, input_example=X.head())
    reg.set_alias(NAME, "champion", mv.version)
    extra = {
        "ref": f"{NAME}@champion",
        "database_url": f"sqlite:///{root}/registry.db",
        "storage_url": f"file://{root}/artifacts",
    }
    return {"reg": reg, "model": model, "X": X, "version": mv, "extra": extra, "root": root}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model_folder(base: Path, extra: dict) -> tuple[Path, int]:
    """An MLServer repository folder: server settings (single process, loopback) + one model."""
    http = _free_port()
    (base / NAME).mkdir(parents=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (base / "settings.json").write_text(json.dumps(settings))
    model_settings = {"name": NAME, "implementation": IMPLEMENTATION, "parameters": {"extra": extra}}
    (base / NAME / "model-settings.json").write_text(json.dumps(model_settings))
    return base, http


def _env() -> dict[str, str]:
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MAESTRALE_")}
    return {**env, "DO_NOT_TRACK": "1"}


def _start(mlserver: Path, folder: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [str(mlserver), "start", str(folder)],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_ready(proc: subprocess.Popen, http: int, log: Path) -> None:
    import httpx

    url = f"http://127.0.0.1:{http}/v2/models/{NAME}/ready"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(log.read_text())
            pytest.fail(f"mlserver exited {proc.returncode} before {NAME} was ready:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{NAME} not ready on mlserver after {START_TIMEOUT_S} s:\n{_tail(log.read_text())}")


def test_mlserver_serves_the_registry_version(mlserver_bin: Path, registered, tmp_path: Path) -> None:
    import httpx

    folder, http = _model_folder(tmp_path / "models", registered["extra"])
    log = tmp_path / "mlserver.log"
    proc = _start(mlserver_bin, folder, log)
    try:
        _wait_ready(proc, http, log)
        X = registered["X"].iloc[1000:1010]
        expected = registered["model"].predict(X)
        url = f"http://127.0.0.1:{http}/v2/models/{NAME}/infer"

        # one input per feature, sent in reverse order: the runtime puts them in schema order
        per_feature = {
            "inputs": [
                {"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()}
                for c in reversed(X.columns)
            ]
        }
        r = httpx.post(url, json=per_feature, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == str(registered["version"].version) == "2"
        (out,) = body["outputs"]
        assert out["name"] == "predict" and out["datatype"] == "FP64" and out["shape"] == [len(X)]
        np.testing.assert_allclose(out["data"], expected, rtol=1e-12, atol=0)

        # one [n, k] input in the schema's column order
        flat = X.to_numpy().ravel().tolist()
        matrix = {"inputs": [{"name": "x", "shape": list(X.shape), "datatype": "FP64", "data": flat}]}
        r = httpx.post(url, json=matrix, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == "2"
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected, rtol=1e-12, atol=0)

        # a missing feature is a 400 that names it
        bad = {"inputs": per_feature["inputs"][1:]}
        r = httpx.post(url, json=bad, timeout=10)
        assert r.status_code == 400
        assert X.columns[0] in r.json()["error"]
    finally:
        _stop(proc)


def test_corrupted_artifact_fails_the_load(mlserver_bin: Path, registered, tmp_path: Path) -> None:
    reg, mv = registered["reg"], registered["version"]
    blob = registered["root"] / "artifacts" / mv.artifact.key
    original = blob.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    blob.write_bytes(bytes(damaged))
    try:
        folder, _http = _model_folder(tmp_path / "models", registered["extra"])
        log = tmp_path / "mlserver.log"
        proc = _start(mlserver_bin, folder, log)
        try:
            proc.wait(timeout=START_TIMEOUT_S)  # MLServer shuts down when a model fails to load at startup
        except subprocess.TimeoutExpired:
            pytest.fail(f"mlserver kept running with a corrupted artifact:\n{_tail(log.read_text())}")
        finally:
            _stop(proc)
        text = log.read_text()
        assert "IntegrityError" in text, _tail(text, 40)
        assert f"{NAME}:{mv.version} is corrupted" in text
        assert mv.artifact.sha256 in text
        assert f"Loaded model '{NAME}' successfully" not in text
    finally:
        blob.write_bytes(original)
    assert reg.verify(f"{NAME}:{mv.version}").ok


def test_mlserver_serves_a_feature_pipeline_on_raw_inputs(mlserver_bin: Path, tmp_path: Path) -> None:
    """A spec with `feature_set:` registers a pipeline; MLServer takes the time and the weather, as
    `Registry.load(...).predict` does, and a missing raw input is a 400 that names it."""
    import httpx

    from maestrale import Registry
    from maestrale.training import load_spec, train
    from maestrale.training.trainer import load_for
    from maestrale.training.validate import prepare
    from tests.integration.test_serving_raw_inputs import SPEC, v2_body

    root = tmp_path / "registry"
    extra = {"ref": "pv-raw@champion", "database_url": f"sqlite:///{root}/registry.db",
             "storage_url": f"file://{root}/artifacts"}  # fmt: skip
    reg = Registry(database_url=extra["database_url"], storage_url=extra["storage_url"])
    spec = load_spec(SPEC)
    result = train(spec, reg)
    reg.set_alias("pv-raw", "champion", result.version)
    raw = prepare(spec, load_for(spec)).raw.iloc[-24:].reset_index()
    expected = reg.load(result.ref).predict(raw)

    folder, http = _model_folder(tmp_path / "models", extra)
    settings = json.loads((folder / NAME / "model-settings.json").read_text())
    settings["name"] = "pv-raw"
    (folder / NAME).rename(folder / "pv-raw")
    (folder / "pv-raw" / "model-settings.json").write_text(json.dumps(settings))
    log = tmp_path / "mlserver.log"
    proc = _start(mlserver_bin, folder, log)
    try:
        url = f"http://127.0.0.1:{http}/v2/models/pv-raw"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(f"{url}/ready"):
            assert proc.poll() is None and time.monotonic() < deadline, _tail(log.read_text())
            time.sleep(0.25)
        r = httpx.post(f"{url}/infer", json=v2_body(raw), timeout=10)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected, rtol=0, atol=1e-12)
        body = v2_body(raw)
        body["inputs"] = [i for i in body["inputs"] if i["name"] != "temp_air"]
        r = httpx.post(f"{url}/infer", json=body, timeout=10)
        assert r.status_code == 400 and "temp_air" in r.text, r.text
    finally:
        _stop(proc)


def _ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
