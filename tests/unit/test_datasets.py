"""Tests of maestrale.datasets on the real packaged data (no mocks)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from maestrale.datasets import (
    NREL_SYSTEM50_ESTIMATED_CAPACITY_KW,
    PVGIS_CREDIT,
    nrel_system50,
    pv_features,
    pvgis_italy_tmy,
)
from maestrale.datasets import pvgis as pvgis_module
from maestrale.datasets._files import data_file

WEATHER = ["ghi", "ghi_clear", "dni_clear", "dhi_clear", "temp_air"]
# Measured once on this data (HistGradientBoostingRegressor(random_state=0), train 2011-04-15 → 2011-07-31,
# test August 2011): nMAE = 0.028 over all hours. The bound leaves room for library-version drift.
NMAE_BOUND = 0.05


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    return nrel_system50("1h")


@pytest.fixture(scope="module")
def tmy() -> pd.DataFrame:
    return pvgis_italy_tmy()


# --- nrel_system50 -----------------------------------------------------------------------------------


def test_nrel_columns_index_and_shape(hourly: pd.DataFrame) -> None:
    assert list(hourly.columns) == ["power_kw", *WEATHER]
    assert isinstance(hourly.index, pd.DatetimeIndex)
    assert str(hourly.index.tz) == "UTC"
    assert hourly.index.freq == pd.Timedelta("1h")
    # 2011-04-15 00:00 MDT → 2013-12-31 23:00 MST: 992 local days of 24 h, plus one hour, = 23809 rows.
    assert len(hourly) == 23_809
    assert all(hourly[c].dtype == np.float64 for c in hourly.columns)


def test_nrel_date_range_in_local_time(hourly: pd.DataFrame) -> None:
    local = hourly.index.tz_convert("America/Denver")
    assert local[0] == pd.Timestamp("2011-04-15 00:00", tz="America/Denver")
    assert local[-1].strftime("%Y-%m-%d") == "2013-12-31"
    assert hourly.index[0].strftime("%Y-%m") == "2011-04"


@pytest.mark.parametrize("freq", ["15min", "30min", "1h", "1D"])
def test_nrel_index_regular_monotonic_unique(freq: str) -> None:
    df = nrel_system50(freq)
    assert df.index.is_monotonic_increasing
    assert not df.index.has_duplicates
    steps = df.index.to_series().diff().dropna().unique()
    assert list(steps) == [pd.Timedelta(freq)]


def test_nrel_value_ranges(hourly: pd.DataFrame) -> None:
    power = hourly["power_kw"].dropna()
    assert power.min() >= -0.01
    assert power.max() <= NREL_SYSTEM50_ESTIMATED_CAPACITY_KW
    assert hourly[["ghi", "ghi_clear", "dni_clear", "dhi_clear"]].min().min() >= 0
    assert hourly[["ghi", "ghi_clear"]].max().max() <= 1400
    assert hourly["temp_air"].between(-40, 50).all()
    # Logger gaps are the only NaN, a few % of the hours; the weather is complete.
    assert hourly["power_kw"].isna().mean() < 0.05
    assert not hourly[WEATHER].isna().any().any()


def test_nrel_power_units_and_capacity_constant_match_data() -> None:
    fine = nrel_system50("15min")
    peak = fine["power_kw"].max()
    # kW, not W: the peak of a few-kW array, and the estimate is that peak rounded up to 0.1 kW.
    assert 3.0 < peak <= NREL_SYSTEM50_ESTIMATED_CAPACITY_KW
    assert pytest.approx(np.ceil(peak * 10) / 10) == NREL_SYSTEM50_ESTIMATED_CAPACITY_KW


def test_nrel_hourly_power_is_mean_of_quarter_hours() -> None:
    fine = nrel_system50("15min")
    hourly = nrel_system50("1h")
    noon = pd.Timestamp("2012-06-20 18:00", tz="UTC")  # 12:00 MDT
    expected = fine.loc[noon : noon + pd.Timedelta("45min"), "power_kw"].mean()
    assert hourly.loc[noon, "power_kw"] == pytest.approx(expected)


def test_nrel_dst_is_corrected() -> None:
    """Production starts at the same UTC time just before and just after each US DST change.

    The raw file's stamps are local clock time labelled UTC-07:00, which makes the start of production
    jump by one hour on those dates; the loader removes that jump.
    """
    df = nrel_system50("15min")
    producing = df["power_kw"] > 0.05 * NREL_SYSTEM50_ESTIMATED_CAPACITY_KW

    def median_start_hour_utc(start: pd.Timestamp, end: pd.Timestamp) -> float:
        on = producing[(df.index >= start) & (df.index < end)]
        on = on[on]
        first = on.groupby(on.index.tz_convert("Etc/GMT+7").date).apply(
            lambda s: s.index[0].hour + s.index[0].minute / 60.0
        )
        return float(first.median())

    week = pd.Timedelta(days=7)
    for change in ["2011-11-06", "2012-03-11", "2012-11-04", "2013-03-10", "2013-11-03"]:
        day = pd.Timestamp(change, tz="America/Denver")
        before = median_start_hour_utc(day - week, day)
        after = median_start_hour_utc(day + pd.Timedelta(days=1), day + pd.Timedelta(days=1) + week)
        assert abs(after - before) <= 0.5, (change, before, after)


@pytest.mark.parametrize("freq", ["7min", "1M", "MS", "bogus", "-1h", "0min", "5h"])
def test_nrel_bad_freq_names_the_fix(freq: str) -> None:
    with pytest.raises(ValueError, match="multiple of 15 minutes"):
        nrel_system50(freq)


def test_nrel_returns_independent_copies() -> None:
    first = nrel_system50("15min")
    first.loc[first.index[0], "power_kw"] = 999.0
    assert nrel_system50("15min")["power_kw"].iloc[0] != 999.0


# --- pvgis_italy_tmy ---------------------------------------------------------------------------------


def test_pvgis_shape_columns_and_tz(tmy: pd.DataFrame) -> None:
    assert tmy.shape == (8760, 9)
    assert list(tmy.columns) == [
        "ghi",
        "dni",
        "dhi",
        "temp_air",
        "relative_humidity",
        "wind_speed",
        "wind_direction",
        "pressure",
        "ir",
    ]
    assert str(tmy.index.tz) == "UTC"
    assert tmy.index[0] == pd.Timestamp("2018-01-01 00:00", tz="UTC")  # January comes from 2018
    assert not tmy.index.has_duplicates
    assert not tmy.isna().any().any()


def test_pvgis_value_ranges(tmy: pd.DataFrame) -> None:
    assert tmy[["ghi", "dni", "dhi"]].min().min() >= 0
    assert tmy["ghi"].max() <= 1400
    assert tmy["relative_humidity"].between(0, 100).all()
    assert tmy["pressure"].between(90_000, 105_000).all()  # Pa, at 250 m
    assert tmy["temp_air"].between(-30, 45).all()
    assert tmy.attrs["latitude"] == 45.0 and tmy.attrs["longitude"] == 8.0
    assert tmy.attrs["months_selected"][1] == 2018


def test_pvgis_coerce_year_gives_monotonic_year() -> None:
    tmy = pvgis_italy_tmy(coerce_year=2021)
    assert tmy.index.is_monotonic_increasing and not tmy.index.has_duplicates
    assert tmy.index[0] == pd.Timestamp("2021-01-01 00:00", tz="UTC")
    assert tmy.index[-1] == pd.Timestamp("2021-12-31 23:00", tz="UTC")
    assert (tmy.index.to_series().diff().dropna() == pd.Timedelta("1h")).all()
    with pytest.raises(ValueError, match="coerce_year"):
        pvgis_italy_tmy(coerce_year=0)


def test_pvgis_credit_kept() -> None:
    for doc in (pvgis_italy_tmy.__doc__, pvgis_module.__doc__):
        assert doc is not None
        assert "PVGIS © European Union, 2001-2024" in doc
        assert "provided the source is acknowledged" in doc
    assert "PVGIS © European Union, 2001-2024" in PVGIS_CREDIT
    readme = data_file("README.md").read_text(encoding="utf-8")
    assert "PVGIS © European Union, 2001-2024" in readme
    assert "MIT License" in readme and "pvanalytics" in readme


# --- pv_features -------------------------------------------------------------------------------------


def test_pv_features_columns_no_nan_no_target(hourly: pd.DataFrame) -> None:
    X = pv_features(hourly)
    assert list(X.columns) == [
        "hour_sin",
        "hour_cos",
        "doy_sin",
        "doy_cos",
        "ghi",
        "ghi_clear",
        "clearsky_index",
        "temp_air",
    ]
    assert "power_kw" not in X.columns
    assert not X.isna().any().any()
    assert X.index.equals(hourly.index)
    assert X["clearsky_index"].between(0, 2).all()
    assert (X.loc[hourly["ghi_clear"] < 10, "clearsky_index"] == 0).all()
    assert np.allclose(X["hour_sin"] ** 2 + X["hour_cos"] ** 2, 1.0)


def test_pv_features_is_pure_and_ignores_target(hourly: pd.DataFrame) -> None:
    before = hourly.copy()
    X1 = pv_features(hourly)
    pd.testing.assert_frame_equal(hourly, before)
    scrambled = hourly.assign(power_kw=np.arange(len(hourly), dtype=float))
    pd.testing.assert_frame_equal(pv_features(scrambled), X1)


def test_pv_features_on_pvgis_without_clear_sky(tmy: pd.DataFrame) -> None:
    X = pv_features(tmy)
    assert list(X.columns) == ["hour_sin", "hour_cos", "doy_sin", "doy_cos", "ghi", "temp_air"]
    assert not X.isna().any().any()


def test_pv_features_errors() -> None:
    with pytest.raises(KeyError, match="temp_air"):
        pv_features(pd.DataFrame({"ghi": [1.0]}, index=pd.DatetimeIndex(["2020-01-01"], tz="UTC")))
    with pytest.raises(TypeError, match="DatetimeIndex"):
        pv_features(pd.DataFrame({"ghi": [1.0], "temp_air": [1.0]}))


# --- a model on the real data --------------------------------------------------------------------------


def test_model_on_first_months_predicts_next_month(hourly: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y = pv_features(hourly), hourly["power_kw"]
    split, end = pd.Timestamp("2011-08-01", tz="UTC"), pd.Timestamp("2011-09-01", tz="UTC")
    known = y.notna()
    train = known & (hourly.index < split)
    test = known & (hourly.index >= split) & (hourly.index < end)
    assert train.sum() > 2000 and test.sum() > 600

    model = HistGradientBoostingRegressor(random_state=0).fit(X[train], y[train])
    pred = np.clip(model.predict(X[test]), 0.0, None)
    nmae = float(np.mean(np.abs(pred - y[test])) / NREL_SYSTEM50_ESTIMATED_CAPACITY_KW)
    assert nmae < NMAE_BOUND, f"nMAE {nmae:.4f}"


# --- packaging -----------------------------------------------------------------------------------------


def test_import_is_cheap() -> None:
    """Importing maestrale.datasets must not import pandas nor read files (checked in a clean interpreter)."""
    code = "import sys, maestrale.datasets; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_data_file_error_names_the_fix() -> None:
    with pytest.raises(FileNotFoundError, match="Reinstall maestrale"):
        data_file("no_such_file.parquet")
