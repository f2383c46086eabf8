"""The V2 model server on a real registry (SQLite + local folder) behind a real uvicorn: metadata,
inference in both layouts, precise 400/404s, plain JSON records, and prediction logging into a real
monitor store over the in-process bus.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sqlalchemy import select

from maestrale import Registry
from maestrale.config import Settings, load_settings
from maestrale.serving import create_app
from tests.integration.conftest import wait_for

NAME = "pv-serve"
REF = f"{NAME}@champion"


@functools.cache
def pv_data() -> tuple[pd.DataFrame, pd.Series]:
    """Three weeks of NREL system 50 (hourly): PV features and measured power (read once per session)."""
    from maestrale.datasets import nrel_system50, pv_features

    df = nrel_system50("1h").loc["2012-05-01":"2012-05-21"]
    X = pv_features(df).dropna()
    y = df.loc[X.index, "power_kw"].fillna(0.0)
    return X, y


@dataclass
class World:
    settings: Settings
    registry: Registry
    X: pd.DataFrame
    y: pd.Series
    v1: Ridge
    tmp: Path

    def register(self, factor: float, name: str = NAME, champion: bool = True) -> tuple[int, Ridge]:
        """Register a Ridge fitted on `factor × power` (so versions predict differently)."""
        model = Ridge(alpha=1.0).fit(self.X, self.y * factor)
        mv = self.registry.register(name, model, input_example=self.X.head(), metrics={"nmae": 0.1})
        if champion:
            self.registry.set_alias(name, "champion", mv.version)
        return mv.version, model


def make_settings(tmp: Path, broker_url: str = "memory://") -> Settings:
    return load_settings(
        home=tmp / "home", database_url=f"sqlite:///{tmp}/registry.db", storage_url=f"file://{tmp}/artifacts",
        broker_url=broker_url, bus_namespace=f"serve-{uuid.uuid4().hex[:10]}",
    )  # fmt: skip


def make_world(tmp: Path, broker_url: str = "memory://") -> World:
    """A registry on SQLite + a folder, `pv-serve` v1 registered and champion, a bus namespace of its own."""
    settings = make_settings(tmp, broker_url)
    X, y = pv_data()
    world = World(settings, Registry(settings=settings), X, y, Ridge(), tmp)
    _, world.v1 = world.register(1.0)
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    from maestrale.bus.transports.memory import MemoryTransport

    MemoryTransport(w.settings.bus_namespace).delete()


@contextmanager
def serving(app) -> Iterator[str]:
    """Run `app` under uvicorn on a free port, lifespan on (so the bus, poll and logger run)."""
    import uvicorn

    from tests.services import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"model server did not start on {url}"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "model server did not shut down"


def per_feature(X: pd.DataFrame, **extra) -> dict:
    """A V2 request with one FP64 input per feature."""
    inputs = [{"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns]
    return {"inputs": inputs, **extra}


def output(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    [out] = response.json()["outputs"]
    assert out["name"] == "predict" and out["datatype"] == "FP64"
    return np.asarray(out["data"]).reshape(out["shape"])


def test_metadata_health_and_inference_in_both_layouts(world: World):
    X = world.X.iloc[:24]
    app = create_app(world.settings, [REF], log_predictions=False)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        server = {"name": "maestrale", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
        assert c.get("/v2").json() == server
        meta = c.get(f"/v2/models/{NAME}").json()
        assert meta["name"] == NAME and meta["versions"] == ["1"] and meta["platform"] == "sklearn"
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
            (col, "FP64", [-1]) for col in X.columns
        ]
        assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
        assert c.get(f"/v2/models/{NAME}/versions/1").json() == meta
        assert c.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
        assert c.get(f"/v2/models/{NAME}/versions/1/ready").status_code == 200

        expected = world.v1.predict(X)
        r = c.post(f"/v2/models/{NAME}/infer", json=per_feature(X, id="req-1"))
        assert (
            r.json()["model_name"] == NAME and r.json()["model_version"] == "1" and r.json()["id"] == "req-1"
        )
        np.testing.assert_array_equal(output(r), expected)
        # one 2-D input whose columns follow the schema, nested; and the versioned path, flat
        matrix = {"name": "input-0", "shape": [24, X.shape[1]], "datatype": "FP64"}
        r = c.post(f"/v2/models/{NAME}/infer", json={"inputs": [{**matrix, "data": X.to_numpy().tolist()}]})
        np.testing.assert_array_equal(output(r), expected)
        flat = {**matrix, "data": X.to_numpy().ravel().tolist()}
        r = c.post(f"/v2/models/{NAME}/versions/1/infer", json={"inputs": [flat]})
        np.testing.assert_array_equal(output(r), expected)
        # MLServer's pd content type, [n, 1] columns
        body = per_feature(X, parameters={"content_type": "pd"})
        for inp in body["inputs"]:
            inp["shape"], inp["data"] = [24, 1], [[v] for v in inp["data"]]
        np.testing.assert_array_equal(output(c.post(f"/v2/models/{NAME}/infer", json=body)), expected)


def test_client_mistakes_are_400_with_precise_messages(world: World):
    X = world.X.iloc[:4]
    good = per_feature(X)
    cases = {
        "missing feature": ({"inputs": good["inputs"][:-1]}, "missing feature(s): temp_air"),
        "extra feature": (
            {"inputs": [*good["inputs"], {**good["inputs"][0], "name": "wind"}]}, "unexpected input(s): wind",
        ),
        "wrong datatype": (
            {"inputs": [{**i, "datatype": "BYTES", "data": [str(v) for v in i["data"]]} if i["name"] == "ghi"
                        else i for i in good["inputs"]]},
            "input 'ghi' is BYTES but feature 'ghi' is float64: send it as FP64",
        ),
        "length mismatch": (
            {"inputs": [{**i, "shape": [3], "data": i["data"][:3]} if i["name"] == "ghi" else i
                        for i in good["inputs"]]},
            "inputs have different lengths",
        ),
        "shape vs data": (
            {"inputs": [{**i, "shape": [5]} if i["name"] == "ghi" else i for i in good["inputs"]]},
            "input 'ghi': shape [5] needs 5 values but data has 4",
        ),
        "unknown datatype": (
            {"inputs": [{**i, "datatype": "DOUBLE"} if i["name"] == "ghi" else i for i in good["inputs"]]},
            "input 'ghi': unknown datatype 'DOUBLE'",
        ),
        "null the model refuses": (
            {"inputs": [{**i, "data": [None] * 4} if i["name"] == "ghi" else i for i in good["inputs"]]},
            "pv-serve:1 cannot predict this input",
        ),
        "no inputs": ({"inputs": []}, "inputs: List should have at least 1 item"),
        "not an object": ([1, 2], "invalid request"),
    }  # fmt: skip
    app = create_app(world.settings, [REF], log_predictions=False)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        for what, (body, message) in cases.items():
            r = c.post(f"/v2/models/{NAME}/infer", json=body)
            assert r.status_code == 400, (what, r.text)
            assert message in r.json()["error"], (what, r.json())
        r = c.post(
            f"/v2/models/{NAME}/infer",
            content=b'{"inputs": [{"name": "ghi",',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["error"].startswith("the request body is not valid JSON")
        r = c.post(f"/models/{NAME}/predict", content=b"records=1")
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        metrics = c.get("/metrics").text
        labels = f'endpoint="/v2/models/{{name}}/infer",model="{NAME}",status="400"'
        assert f"maestrale_serving_requests_total{{{labels}}} 10.0" in metrics


def test_unknown_models_and_versions_are_404(world: World):
    app = create_app(world.settings, [REF], log_predictions=False)
    body = per_feature(world.X.iloc[:2])
    with serving(app) as url, httpx.Client(base_url=url) as c:
        for method, path in [
            ("GET", "/v2/models/wind-farm"), ("POST", "/v2/models/wind-farm/infer"),
            ("GET", "/v2/models/wind-farm/ready"), ("POST", "/models/wind-farm/predict"),
            ("GET", f"/v2/models/{NAME}/versions/7"), ("POST", f"/v2/models/{NAME}/versions/7/infer"),
            ("GET", f"/v2/models/{NAME}/versions/7/ready"),
        ]:  # fmt: skip
            r = c.request(method, path, json=body if method == "POST" else None)
            assert r.status_code == 404, (path, r.text)
            assert set(r.json()) == {"error"}
        assert (
            "not served here; this server serves: pv-serve" in c.get("/v2/models/wind-farm").json()["error"]
        )
        assert "it serves version 1" in c.get(f"/v2/models/{NAME}/versions/7").json()["error"]
        assert c.get("/v3/anything").json() == {"error": "Not Found"}
        assert 'model="other"' in c.get("/metrics").text  # unknown names never become label values


def test_plain_json_records(world: World):
    X = world.X.iloc[:5]
    app = create_app(world.settings, [REF], log_predictions=False)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        r = c.post(f"/models/{NAME}/predict", json={"records": X.to_dict("records")})
        assert r.status_code == 200, r.text
        assert r.json()["model_name"] == NAME and r.json()["model_version"] == 1
        np.testing.assert_array_equal(r.json()["predictions"], world.v1.predict(X))
        bad = [{k: v for k, v in rec.items() if k != "ghi"} for rec in X.to_dict("records")]
        r = c.post(f"/models/{NAME}/predict", json={"records": bad})
        assert r.status_code == 400 and r.json()["error"].startswith("record 0: missing feature(s): ghi")
        assert c.post(f"/models/{NAME}/predict", json={"records": []}).status_code == 400


def _stored(settings: Settings) -> pd.DataFrame:
    from maestrale.monitoring.schema import predictions as p
    from maestrale.platform.db import get_engine

    with get_engine(settings.database_url).connect() as conn:
        rows = conn.execute(select(p).order_by(p.c.id)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def test_served_predictions_reach_the_monitor(world: World):
    from maestrale.monitoring.service import MonitorService

    X = world.X.iloc[:24]
    targets = [t.isoformat() for t in X.index]
    monitor = MonitorService(world.settings, interval=None, relay=False).start()
    try:
        app = create_app(world.settings, [REF], log_interval_s=0.2)
        with serving(app) as url, httpx.Client(base_url=url) as c:
            time_input = {"name": "target_time", "shape": [24], "datatype": "BYTES", "data": targets}
            body = per_feature(X)
            body["inputs"].append(time_input)
            r = c.post(f"/v2/models/{NAME}/infer", json=body, headers={"X-Maestrale-Entity": "nrel-50"})
            served = output(r)
            recs = {"records": X.iloc[:2].to_dict("records"), "parameters": {"entity": "p2"}}
            assert c.post(f"/models/{NAME}/predict", json=recs).status_code == 200
            # a backfill: the caller says when the forecast was made
            issued = {"records": X.iloc[:1].to_dict("records"),
                      "parameters": {"entity": "p3", "issued_at": "2011-05-31T18:00:00Z",
                                     "target_time": "2011-06-01T12:00:00Z"}}  # fmt: skip
            assert c.post(f"/models/{NAME}/predict", json=issued).status_code == 200
            bad = {"records": X.iloc[:1].to_dict("records"), "parameters": {"issued_at": "yesterday"}}
            r = c.post(f"/models/{NAME}/predict", json=bad)
            assert r.status_code == 400 and "ISO 8601" in r.json()["error"]
            wait_for(lambda: monitor.stats.predictions == 27, 10, "27 predictions in the monitor store")
    finally:
        monitor.stop()
    stored = _stored(world.settings)
    assert set(stored["model"]) == {NAME} and set(stored["version"]) == {1}
    infer = stored[stored["entity"] == "nrel-50"].sort_values("target_time")
    assert list(pd.to_datetime(infer["target_time"], utc=True)) == list(X.index.tz_convert("UTC"))
    np.testing.assert_allclose(infer["prediction"], served)
    assert infer["features"].iloc[5] == pytest.approx(X.iloc[5].to_dict())
    plain = stored[stored["entity"] == "p2"]
    assert len(plain) == 2  # no target time: the request time, with record ids unique per row
    assert (plain["target_time"] == plain["issued_at"]).all()
    backfill = stored[stored["entity"] == "p3"].iloc[0]
    assert pd.Timestamp(backfill["issued_at"]).tz_localize(None) == pd.Timestamp("2011-05-31 18:00")
    assert backfill["horizon_s"] == 18 * 3600


def test_full_buffer_drops_are_counted_requests_stay_fast_and_shutdown_flushes(world: World):
    from maestrale.monitoring.service import MonitorService

    X = world.X.iloc[:24]
    monitor = MonitorService(world.settings, interval=None, relay=False).start()
    try:
        # 100 records fit; the flush interval is far away, so only the shutdown publishes
        app = create_app(world.settings, [REF], log_capacity=100, log_interval_s=600)
        with serving(app) as url, httpx.Client(base_url=url) as c:
            took = []
            for _ in range(6):  # 4 × 24 = 96 buffered, then 2 × 24 dropped
                start = time.perf_counter()
                assert c.post(f"/v2/models/{NAME}/infer", json=per_feature(X)).status_code == 200
                took.append(time.perf_counter() - start)
            metrics = c.get("/metrics").text
            assert 'maestrale_serving_predictions_dropped_total{reason="buffer_full"} 48.0' in metrics
            assert "maestrale_serving_prediction_log_queue 96.0" in metrics
            assert max(took[4:]) < 0.5, took  # a full buffer costs the client nothing
            assert monitor.stats.predictions == 0
        # leaving `serving` shut the server down: its lifespan flushed the buffer
        wait_for(lambda: monitor.stats.predictions == 96, 10, "the 96 buffered records after shutdown")
    finally:
        monitor.stop()
    print(f"\nrequest latency with a full log buffer: {[round(t * 1000, 1) for t in took]} ms")


def test_custom_classes_are_served_only_when_trusted(world: World):
    from sklearn.pipeline import make_pipeline

    from maestrale.errors import MaestraleError
    from tests.unit.custom_estimators import ClipTransformer

    model = make_pipeline(ClipTransformer(), Ridge()).fit(world.X, world.y)
    kind = "tests.unit.custom_estimators.ClipTransformer"
    world.registry.register("pv-custom", model, input_example=world.X.head(), trusted_types=[kind])
    world.registry.set_alias("pv-custom", "champion", 1)
    with pytest.raises(MaestraleError, match="ClipTransformer"):
        create_app(world.settings, ["pv-custom@champion"], log_predictions=False)
    app = create_app(world.settings, ["pv-custom@champion"], log_predictions=False, trusted_types=[kind])
    with serving(app) as url:
        served = output(httpx.post(f"{url}/v2/models/pv-custom/infer", json=per_feature(world.X.iloc[:5])))
    np.testing.assert_allclose(served.ravel(), model.predict(world.X.iloc[:5]))
