"""Features travel with the model: a spec with `feature_set: pv_features` registers a pipeline that takes
the raw inputs (time + weather). The same raw rows through `maestrale serve` (real HTTP, V2), through
`Registry.load(...).predict` and through the training-time path give the same numbers; V2 metadata lists
the raw inputs; a missing one is a 400 that names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
import pytest

from maestrale import Registry
from maestrale.config import Settings, load_settings
from maestrale.datasets import pv_features
from maestrale.serving import create_app
from maestrale.training import load_spec, train
from maestrale.training.trainer import load_for
from maestrale.training.validate import prepare
from tests.integration.test_serving import serving

NAME = "pv-raw"
SPEC = f"""\
name: {NAME}
data: {{dataset: nrel_system50, freq: 1h}}
target: power_kw
feature_set: pv_features
estimator: sklearn.ensemble:HistGradientBoostingRegressor
params: {{max_iter: 20}}
train_window: {{start: 2011-06-01, end: 2011-07-14}}
split:
  holdout: {{test_start: 2011-07-01}}
  backtest: {{folds: 1, test_size: 7D}}
capacity: 3.4
"""


@dataclass
class Trained:
    settings: Settings
    registry: Registry
    ref: str
    raw: pd.DataFrame  # 24 raw rows as a client holds them: time column (UTC) + weather
    training_path: np.ndarray  # what the fitted estimator predicts on the features training built


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    tmp = tmp_path_factory.mktemp("raw-inputs")
    settings = load_settings(
        home=tmp / "home", database_url=f"sqlite:///{tmp}/registry.db", storage_url=f"file://{tmp}/artifacts",
        broker_url="memory://", bus_namespace=f"raw-{tmp.name}",
    )  # fmt: skip
    registry = Registry(settings=settings)
    spec = load_spec(SPEC)
    result = train(spec, registry)
    registry.set_alias(NAME, "champion", result.version)
    prepared = prepare(spec, load_for(spec))
    rows = slice(len(prepared.X) - 24, len(prepared.X))
    raw = prepared.raw.iloc[rows].reset_index()
    # the training-time path: the features as training built them, into the estimator it fitted
    estimator = registry.load(result.ref).named_steps["model"]
    yield Trained(settings, registry, result.ref, raw, estimator.predict(prepared.X.iloc[rows]))


def v2_body(raw: pd.DataFrame, times: list[str] | None = None) -> dict:
    """A V2 request of raw inputs: the time as BYTES of ISO 8601 strings, the weather as FP64."""
    stamps = times if times is not None else [t.isoformat() for t in raw["time"]]
    inputs = [{"name": "time", "shape": [len(raw)], "datatype": "BYTES", "data": stamps}]
    inputs += [
        {"name": c, "shape": [len(raw)], "datatype": "FP64", "data": raw[c].tolist()}
        for c in raw
        if c != "time"
    ]
    return {"inputs": inputs}


def test_registered_model_takes_raw_inputs_and_matches_training(trained: Trained):
    mv = trained.registry.get_version(trained.ref)
    assert [c.name for c in mv.input_schema or []] == ["time", "ghi", "temp_air", "ghi_clear"]
    assert mv.params["features"] == ",".join(pv_features(trained.raw.set_index("time")).columns)
    model = trained.registry.load(trained.ref)  # default trust: Maestrale's audited FeatureStep
    np.testing.assert_allclose(model.predict(trained.raw), trained.training_path, rtol=0, atol=1e-12)
    # the same instants written in local time with their offsets give the same numbers
    rome = trained.raw.assign(
        time=trained.raw["time"].dt.tz_convert("Europe/Rome").map(pd.Timestamp.isoformat)
    )
    np.testing.assert_allclose(model.predict(rome), trained.training_path, rtol=0, atol=1e-12)


def test_serve_v2_on_raw_rows_gives_the_same_numbers(trained: Trained):
    app = create_app(trained.settings, [f"{NAME}@champion"], log_predictions=False)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        meta = c.get(f"/v2/models/{NAME}").json()
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("time", "BYTES"), ("ghi", "FP64"), ("temp_air", "FP64"), ("ghi_clear", "FP64"),
        ]  # fmt: skip
        r = c.post(f"/v2/models/{NAME}/infer", json=v2_body(trained.raw))
        assert r.status_code == 200, r.text
        [out] = r.json()["outputs"]
        np.testing.assert_allclose(out["data"], trained.training_path, rtol=0, atol=1e-12)

        # a missing raw input is a 400 naming it
        body = v2_body(trained.raw)
        body["inputs"] = [i for i in body["inputs"] if i["name"] not in ("ghi_clear", "temp_air")]
        r = c.post(f"/v2/models/{NAME}/infer", json=body)
        assert r.status_code == 400 and "temp_air" in r.text and "ghi_clear" in r.text, r.text
        # a naive time is a 400 that says how to send it
        naive = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in trained.raw["time"]]
        r = c.post(f"/v2/models/{NAME}/infer", json=v2_body(trained.raw, naive))
        assert r.status_code == 400 and "has no time zone" in r.text and "+02:00" in r.text, r.text
        # an unreadable one names its value
        bad = [*naive[:-1], "yesterday"]
        r = c.post(f"/v2/models/{NAME}/infer", json=v2_body(trained.raw, bad))
        assert r.status_code == 400 and "'yesterday' at row 23" in r.text, r.text


def test_served_predictions_land_in_the_embedded_monitor_store_at_their_input_times(trained: Trained):
    """memory:// with no monitor in the process: the server's logger stores into the monitor's database,
    each prediction at the time it was asked for (the model's time input)."""
    from sqlalchemy import create_engine, text

    from tests.integration.conftest import wait_for

    app = create_app(trained.settings, [f"{NAME}@champion"], log_interval_s=0.1)
    with serving(app) as url:
        r = httpx.post(f"{url}/v2/models/{NAME}/infer", json=v2_body(trained.raw))
        assert r.status_code == 200, r.text
        wait_for(lambda: app.state.logger.logged == 24, what="24 predictions logged")
    assert app.state.logger.failed == 0
    engine = create_engine(trained.settings.database_url)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT target_time FROM predictions ORDER BY target_time")).scalars().all()
    finally:
        engine.dispose()
    logged = pd.DatetimeIndex(pd.to_datetime(rows, utc=True))
    assert list(logged) == list(trained.raw["time"])
