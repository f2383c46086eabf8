"""The holdout series stored with each trained version: built, bounded, checked on write and on read,
served by `Registry.holdout` (embedded and remote) and `GET .../versions/{v}/holdout`; the profile's
histograms for the UI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import Ridge
from sqlalchemy import update

from maestrale import Registry
from maestrale.errors import NoHoldout
from maestrale.registry import schema as s
from maestrale.registry.holdout import MAX_POINTS, SCHEMA
from maestrale.stats.profile import histograms, reference_profile
from maestrale.training import load_spec, train
from maestrale.training.holdout import holdout_series

# 9 weeks of hourly NREL data, 20 boosting iterations: a real training in a couple of seconds
SPEC = """\
name: pv-holdout
data: {dataset: nrel_system50, freq: 1h}
target: power_kw
feature_set: pv_features
estimator: sklearn.ensemble:HistGradientBoostingRegressor
params: {max_iter: 20}
train_window: {start: 2011-05-01, end: 2011-07-01}
split:
  holdout: {test_start: 2011-06-17}
  backtest: {folds: 2, test_size: 7D}
capacity: 3.4
"""


def _doc(n: int = 3) -> dict:
    times = pd.date_range("2012-06-01", periods=n, freq="h", tz="UTC")
    return holdout_series(times, np.arange(n, dtype=float), np.arange(n, dtype=float) + 0.5, [])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("MAESTRALE_DATABASE_URL", "MAESTRALE_STORAGE_URL", "MAESTRALE_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_a_trained_version_stores_its_holdout_and_rest_serves_it(home: Path) -> None:
    from maestrale.api.app import create_app
    from maestrale.config import load_settings

    settings = load_settings(home=home, auth=False)
    reg = Registry(settings=settings)
    result = train(load_spec(SPEC), reg)
    h = reg.holdout(result.ref)
    assert h is not None and h["schema"] == SCHEMA and h["entity"] is None
    assert h["rows"] == result.n_test and h["sampling"] == "all" and len(h["times"]) == h["rows"]
    assert pd.Timestamp(h["times"][0]) == pd.Timestamp(result.test_start)
    assert pd.Timestamp(h["times"][-1]) == pd.Timestamp(result.test_end)
    # the stored forecast is what the metrics describe: its MAE over capacity is the recorded nMAE
    nmae = np.mean(np.abs(np.subtract(h["forecast"], h["actual"]))) / 3.4
    assert nmae == pytest.approx(result.metrics["nmae"], rel=1e-6)
    assert sum(b["n"] for b in h["by_hour"]) == h["rows"]
    assert [f["fold"] for f in h["folds"]] == [1, 2]
    for stored, fold in zip(h["folds"], result.backtest, strict=True):
        assert pd.Timestamp(stored["start"]) == pd.Timestamp(fold.test_start)
        assert pd.Timestamp(stored["end"]) == pd.Timestamp(fold.test_end)
        assert stored["metrics"] == fold.metrics and stored["n_test"] == fold.n_test
    # summaries and full records stay as they were: the series is read on its own
    assert "holdout" not in reg.get_version(result.ref).model_dump()

    bare = reg.register("pv-holdout", Ridge().fit([[0.0], [1.0]], [0.0, 1.0]))
    assert reg.holdout(bare.ref) is None
    with TestClient(create_app(settings)) as client:
        r = client.get("/api/v1/models/pv-holdout/versions/1/holdout")
        assert r.status_code == 200 and r.json() == h
        r = client.get(f"/api/v1/models/pv-holdout/versions/{bare.version}/holdout")
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_holdout"
        assert "retrain it" in r.json()["error"]["message"]
        r = client.get("/api/v1/models/pv-holdout/versions/99/holdout")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

        # a stored row is hostile data too: a tampered series is a 404 naming the field, not a 500
        bad = {**h, "forecast": h["forecast"][:-1]}
        with reg._meta.write_engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(update(s.versions).where(s.versions.c.version == 1).values(holdout=bad))
        r = client.get("/api/v1/models/pv-holdout/versions/1/holdout")
        assert r.status_code == 404 and "holdout.forecast is not a list of" in r.json()["error"]["message"]
    with pytest.raises(NoHoldout, match="malformed .*retrain to replace it"):
        reg.holdout(result.ref)


def test_downsampling_keeps_the_ends_and_hourly_residuals_use_every_row() -> None:
    n = 5_000
    times = pd.date_range("2012-01-01", periods=n, freq="h", tz="Europe/Rome")
    actual = np.r_[np.nan, np.ones(n - 1)]
    doc = holdout_series(times, actual, np.full(n, 1.25), [])
    assert doc["rows"] == n - 1 and doc["sampling"] == "even" and len(doc["times"]) == MAX_POINTS
    assert doc["times"][0] == "2012-01-01T00:00:00Z"  # 01:00 in Rome; the NaN row left out
    assert pd.Timestamp(doc["times"][-1]) == times[-1]
    assert sum(b["n"] for b in doc["by_hour"]) == n - 1
    assert {b["mean"] for b in doc["by_hour"]} == {0.25}


def test_holdout_bounds_are_enforced_when_registering(sqlite_registry: Registry) -> None:
    model = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    too_many = _doc(3)
    too_many["times"] = too_many["times"] * 400  # 1,200 points
    cases = [
        (too_many, "at most 1000"),
        ({**_doc(), "actual": [1.0, float("inf"), 2.0]}, r"actual\[1\] is not a finite number"),
        ({**_doc(), "times": ["2012-06-01T10:00:00", *_doc()["times"][1:]]}, "has no UTC offset"),
        ({**_doc(), "entity": ["p50"]}, "entity is not null or a list of 3"),
        ({**_doc(), "rows": "3"}, "rows is not an integer"),
        ({**_doc(), "folds": [{"fold": 1}]}, r"folds\[0\] is malformed"),
        ({**_doc(), "extra": "x" * 10}, "unexpected keys"),
    ]
    for doc, message in cases:
        with pytest.raises(Exception, match=message):
            sqlite_registry.register("bounded", model, holdout=doc)
    assert sqlite_registry.list_models().items == []  # nothing half-registered
    mv = sqlite_registry.register("bounded", model, holdout=_doc())
    assert sqlite_registry.holdout(mv.ref) == _doc()


def test_remote_registry_reads_the_holdout(remote_registry: Registry) -> None:
    model = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    with_series = remote_registry.register("remote-holdout", model, holdout=_doc(5))
    bare = remote_registry.register("remote-holdout", model)
    remote_registry.set_alias("remote-holdout", "champion", 1)
    assert remote_registry.holdout(with_series.ref) == _doc(5)
    assert remote_registry.holdout("remote-holdout@champion") == _doc(5)
    assert remote_registry.holdout(bare.ref) is None


def test_profile_histograms_for_the_ui() -> None:
    frame = pd.DataFrame({"ghi": np.linspace(0, 1000, 500), "temp": np.full(500, 20.0)})
    hist = histograms(reference_profile(frame, np.linspace(0, 3, 500)))
    assert set(hist) == {"ghi", "temp", "<predictions>"}
    assert len(hist["ghi"]["edges"]) == len(hist["ghi"]["counts"]) + 1 == 21
    assert sum(hist["ghi"]["counts"]) == 500 and hist["ghi"]["edges"][0] == 0.0
    assert histograms({"schema": "maestrale.profile/1", "columns": {"x": {"histogram": "junk"}}}) == {}
    assert histograms(None) == {} and histograms({"columns": []}) == {}


def test_holdout_times_are_spelt_as_strftime_spells_them():
    from maestrale.training.holdout import _iso_many

    for index in (
        pd.date_range("2012-06-01", periods=720, freq="h", tz="Europe/Rome").tz_convert("UTC"),
        pd.DatetimeIndex(["1969-12-31 23:59:59.5", "2200-01-01 00:00:01.999", "2012-03-25 01:30"], tz="UTC"),
    ):
        assert _iso_many(index) == list(index.strftime("%Y-%m-%dT%H:%M:%SZ"))
