"""`maestrale.features.FeatureStep`: the spec's feature set inside the registered model. Raw inputs in,
the same features as training out; missing inputs named; an absent optional input never drops a feature
silently; stored by skops with Maestrale's audited types only, and a tampered step is refused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from maestrale.datasets import pv_features
from maestrale.errors import ConfigError, UntrustedArtifact
from maestrale.features import FeatureInputError, FeatureStep
from maestrale.registry.formats import deserialize, serialize


def weather(n: int = 48) -> pd.DataFrame:
    """`n` hours of raw inputs (time as a column with an offset, as a client sends them)."""
    times = pd.date_range("2024-06-01", periods=n, freq="h", tz="Europe/Rome")
    hour = np.asarray(times.hour, dtype=float)
    ghi_clear = np.clip(900 * np.sin(np.pi * (hour - 5) / 15), 0, None)
    return pd.DataFrame({
        "time": times.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"(\d{2})(\d{2})$", r"\1:\2", regex=True),
        "ghi": ghi_clear * 0.8, "ghi_clear": ghi_clear, "temp_air": 20 + hour / 3,
    })  # fmt: skip


def pipeline() -> tuple[Pipeline, pd.DataFrame]:
    raw = weather()
    step = FeatureStep("pv_features")
    X = step.fit_transform(raw)
    return Pipeline([("features", step), ("model", Ridge().fit(X, np.arange(len(X), dtype=float)))]), raw


def test_step_computes_exactly_what_the_feature_set_computes():
    raw = weather()
    step = FeatureStep("pv_features").fit(raw)
    assert step.input_columns == ["time", "ghi", "temp_air", "ghi_clear"]
    indexed = raw.drop(columns="time").set_index(pd.DatetimeIndex(pd.to_datetime(raw["time"], utc=True)))
    got, expected = step.transform(raw), pv_features(indexed[["ghi", "temp_air", "ghi_clear"]])
    assert list(got.columns) == list(expected.columns) and (got.index == expected.index).all()
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    # the time may be the frame's index instead of a column, columns in any order, extras ignored
    shuffled = indexed[["temp_air", "ghi_clear", "ghi"]].assign(wind=1.0)
    np.testing.assert_array_equal(step.transform(shuffled).to_numpy(), step.transform(raw).to_numpy())


def test_missing_inputs_are_named_with_what_the_model_takes():
    step = FeatureStep("pv_features").fit(weather())
    with pytest.raises(
        FeatureInputError, match=r"missing input\(s\) temp_air, ghi_clear: this model takes time"
    ):
        step.transform(weather().drop(columns=["ghi_clear", "temp_air"]))
    with pytest.raises(FeatureInputError, match=r"missing input\(s\) time"):
        step.transform(weather().drop(columns="time"))
    with pytest.raises(FeatureInputError, match="has no time zone.*with an offset"):
        step.transform(weather().assign(time="2024-06-01T12:00:00"))
    with pytest.raises(FeatureInputError, match=r"needs input\(s\) temp_air, which are missing"):
        FeatureStep("pv_features").fit(weather().drop(columns="temp_air"))


def test_absent_ghi_clear_never_drops_clearsky_index_silently():
    no_clear = weather().drop(columns="ghi_clear")
    with pytest.raises(FeatureInputError) as err:
        FeatureStep("pv_features").fit(no_clear)
    assert "ghi_clear (clear-sky GHI" in err.value.message and "get_clearsky" in err.value.message
    assert "`features: [hour_sin, hour_cos, doy_sin, doy_cos, ghi, temp_air]`" in err.value.message
    # asking for clearsky_index without its input names both
    with pytest.raises(
        FeatureInputError, match=r"\['clearsky_index'\] are not produced.*ghi_clear are absent"
    ):
        FeatureStep("pv_features", features=["ghi", "clearsky_index"]).fit(no_clear)
    # leaving it out by name is a choice, recorded on the step
    step = FeatureStep("pv_features", features=["hour_sin", "ghi", "temp_air"]).fit(no_clear)
    assert step.optional_absent_ == ["ghi_clear"] and step.input_columns == ["time", "ghi", "temp_air"]


def test_naive_times_are_read_in_the_declared_zone_through_the_dst_change():
    step = FeatureStep("pv_features", timezone="Europe/Rome", features=["hour_sin", "ghi"])
    local = ["2024-10-27 01:00", "2024-10-27 02:00", "2024-10-27 02:00", "2024-10-27 03:00"]
    out = step.fit_transform(pd.DataFrame({"time": local, "ghi": 1.0, "temp_air": 1.0}))
    utc_hours = np.asarray([23, 0, 1, 2], dtype=float)  # four distinct hours: the features differ
    np.testing.assert_allclose(out["hour_sin"], np.sin(2 * np.pi * utc_hours / 24))


def test_pipeline_is_stored_by_skops_with_default_trust_and_predicts_the_same():
    model, raw = pipeline()
    stored = serialize(model)
    assert stored.format == "skops"
    untrusted = sio.get_untrusted_types(data=stored.data)
    assert "maestrale.features.step.FeatureStep" in untrusted  # skops alone would refuse it: we audit it
    loaded = deserialize(stored.data, stored.format, stored.flavor)  # Maestrale's default trust
    np.testing.assert_array_equal(loaded.predict(raw), model.predict(raw))


def test_a_tampered_step_is_refused_at_load_or_at_use():
    model, raw = pipeline()
    step = model.named_steps["features"]
    step.timezone = "../../etc/passwd"
    with pytest.raises(UntrustedArtifact, match="invalid time zone"):
        deserialize(sio.dumps(model), "skops", "sklearn")
    step.timezone, step.features_ = None, {"a": 1}
    with pytest.raises(UntrustedArtifact, match="'features_' = dict"):
        deserialize(sio.dumps(model), "skops", "sklearn")
    # a feature set a spec could not name (a stdlib function) is never called
    step.features_, step.feature_set = ["ghi"], "os:system"
    loaded = deserialize(sio.dumps(model), "skops", "sklearn")
    with pytest.raises(ConfigError, match="feature_set os:system, which this process cannot use"):
        loaded.predict(raw)
