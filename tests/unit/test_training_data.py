"""Splits never leak the future; data validation says what to fix; baselines and profiles are right."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from maestrale.stats.profile import bin_counts, column_profile, psi, reference_profile
from maestrale.training.baselines import climatology, persistence
from maestrale.training.sources import DataVersion, LoadedData
from maestrale.training.spec import SpecError, load_spec
from maestrale.training.splits import backtest_folds, holdout_split
from maestrale.training.validate import DataError, prepare, set_time_index

HOURS = pd.date_range("2011-04-15", periods=24 * 60, freq="h", tz="UTC")


def assert_no_leak(times: pd.DatetimeIndex, train: np.ndarray, test: np.ndarray) -> None:
    assert train.size and test.size
    assert times[train].max() < times[test].min()
    assert not set(train) & set(test)


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_holdout_by_fraction_is_the_tail(fraction: float):
    s = holdout_split(HOURS, test_fraction=fraction)
    assert_no_leak(HOURS, s.train, s.test)
    assert s.test.size == round(len(HOURS) * fraction) and s.test[-1] == len(HOURS) - 1


def test_holdout_by_date_and_empty_windows():
    s = holdout_split(HOURS, test_start=pd.Timestamp("2011-06-01", tz="UTC"))
    assert_no_leak(HOURS, s.train, s.test)
    assert HOURS[s.test[0]] == pd.Timestamp("2011-06-01", tz="UTC")
    with pytest.raises(DataError, match="test window is empty.*test_start earlier"):
        holdout_split(HOURS, test_start=pd.Timestamp("2012-01-01", tz="UTC"))
    with pytest.raises(DataError, match="no training rows"):
        holdout_split(HOURS, test_start=pd.Timestamp("2010-01-01", tz="UTC"))


@pytest.mark.parametrize("size", [24 * 7, "7D", "36h"])
def test_backtest_is_rolling_origin_expanding_and_never_leaks(size):
    folds = backtest_folds(HOURS, 4, size)
    assert len(folds) == 4
    for prev, fold in itertools.pairwise(folds):
        assert fold.train.size > prev.train.size  # expanding window
        assert fold.test[0] == prev.test[-1] + 1  # consecutive test windows
    for fold in folds:
        assert_no_leak(HOURS, fold.train, fold.test)
        assert fold.train[0] == 0 and fold.train[-1] + 1 == fold.test[0]
    assert folds[-1].test[-1] == len(HOURS) - 1
    if size == "7D":
        assert all(f.test.size == 24 * 7 for f in folds)


def test_backtest_with_gaps_and_too_many_folds():
    gappy = HOURS.delete(slice(100, 400))
    for fold in backtest_folds(gappy, 3, "10D"):
        assert_no_leak(gappy, fold.train, fold.test)
    with pytest.raises(DataError, match="fold 1 of 9 has no training rows.*lower split.backtest.folds"):
        backtest_folds(HOURS, 9, "7D")


def test_persistence_looks_up_by_time_not_by_row():
    y = pd.Series(np.arange(72.0), index=HOURS[:72])
    gappy = y.drop(HOURS[30])  # a logger gap: a row shift would now read the wrong hour
    got = persistence(gappy, HOURS[48:72], "24h")
    expected = np.arange(24.0, 48.0)
    expected[30 - 24] = np.nan
    np.testing.assert_array_equal(got, expected)


def test_climatology_means_by_hour_of_day_over_training_rows():
    y = pd.Series(HOURS[:72].hour.to_numpy(dtype=float) * 2, index=HOURS[:72])
    got = climatology(y, HOURS[72:96])
    np.testing.assert_allclose(got, HOURS[72:96].hour.to_numpy() * 2.0)
    week = climatology(y, HOURS[72:74], by="hour_of_week")
    assert np.isnan(week).all()  # those hours of the week were never seen


SPEC = """\
name: m
data: {uri: /x/data.csv}
time_column: time
target: power_kw
features: [ghi, temp_air]
estimator: ridge
max_nan_share: 0.1
"""


def loaded(frame: pd.DataFrame) -> LoadedData:
    return LoadedData(
        frame=frame,
        version=DataVersion(kind="file", uri="/x/data.csv", fingerprint="sha256:0"),
        label="data.csv",
    )


def frame(n: int = 48) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "time": [t.isoformat() for t in HOURS[:n]],
            "ghi": rng.uniform(0, 900, n),
            "temp_air": rng.uniform(0, 30, n),
            "power_kw": rng.uniform(0, 3, n),
        }
    )


def test_prepare_parses_times_and_drops_rows_without_target():
    df = frame()
    df.loc[3, "power_kw"] = np.nan
    p = prepare(load_spec(SPEC), loaded(df))
    assert isinstance(p.times, pd.DatetimeIndex) and str(p.times.tz) == "UTC"
    assert len(p.X) == 47 and list(p.X.columns) == ["ghi", "temp_air"] and p.y.name == "power_kw"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.drop(columns="ghi"),
            r"column 'ghi' is missing from data.csv \(a feature\); columns present: temp_air, power_kw",
        ),
        (
            lambda d: d.assign(temp_air=["n/a", *list(d.temp_air[1:])]),
            r"column 'temp_air' of data.csv has dtype .*'n/a'.*make it numeric",
        ),
        (
            lambda d: d.assign(ghi=np.where(np.arange(48) < 10, np.nan, d.ghi)),
            r"feature 'ghi' is NaN in 21% of the 48 rows.*max_nan_share is 0.1",
        ),
        (lambda d: d.iloc[[1, 0, *range(2, 48)]], r"not increasing: row 1 .* sort the data by time"),
        (
            lambda d: pd.concat([d, d.iloc[[5]]]).sort_values("time", kind="stable"),
            r"1 duplicated timestamps.*daylight saving time.*`timezone:`.*drop them",
        ),
        (
            lambda d: d.rename(columns={"time": "when"}),
            r"time column 'time' is missing from data.csv; columns present: when",
        ),
        (
            lambda d: d.assign(time=["yesterday", *list(d.time[1:])]),
            r"not ISO 8601 timestamps: 'yesterday' at row 0; declare their format .*time_format",
        ),
    ],
    ids=["missing", "dtype", "nan-share", "order", "duplicates", "no-time-column", "bad-time"],
)
def test_validation_messages_say_what_to_fix(change, message):
    with pytest.raises(DataError, match=message):
        prepare(load_spec(SPEC), loaded(change(frame())))


def test_naive_spec_times_need_a_timezone_and_the_rome_fall_back_day_keeps_every_hour():
    # 27 Oct 2024 in local Italian time, as a meter writes it: 02:00 appears twice (CEST, then CET)
    local = pd.date_range("2024-10-27", periods=25, freq="h", tz="Europe/Rome").tz_localize(None)
    df = frame(25).assign(time=local.strftime("%Y-%m-%d %H:%M"))
    with pytest.raises(
        DataError,
        match=r"column 'time' of data.csv has no time zone \(e.g. '2024-10-27 00:00'\): "
        r"add `timezone: Europe/Rome` to the spec",
    ):
        prepare(load_spec(SPEC), loaded(df))
    p = prepare(load_spec(SPEC + "timezone: Europe/Rome\n"), loaded(df))
    assert len(p.X) == 25 and p.times.is_unique  # no hour merged, none lost
    assert list(p.times.tz_convert("UTC")[2:4].hour) == [0, 1]  # 02:00 CEST, then 02:00 CET
    # the same naive stamps as a datetime column (e.g. from Parquet) follow the same rule
    with pytest.raises(DataError, match="has no time zone"):
        prepare(load_spec(SPEC), loaded(df.assign(time=local)))


def test_spec_time_format_reads_day_first_dates_and_names_a_bad_row():
    stamps = pd.date_range("2024-01-13", periods=48, freq="h").strftime("%d/%m/%Y %H:%M")
    df = frame().assign(time=stamps)
    with pytest.raises(
        DataError,
        match=r"'13/01/2024 00:00' at row 0 \(it looks like day/month/year\).*"
        r'time_format: "%d/%m/%Y %H:%M"',
    ):
        prepare(load_spec(SPEC + "timezone: Europe/Rome\n"), loaded(df))
    spec = load_spec(SPEC + 'timezone: Europe/Rome\ntime_format: "%d/%m/%Y %H:%M"\n')
    assert prepare(spec, loaded(df)).times[0] == pd.Timestamp("2024-01-12T23:00Z")
    df.loc[7, "time"] = "2024-01-13 07:00"
    with pytest.raises(DataError, match=r"not in time_format '%d/%m/%Y %H:%M': '2024-01-13 07:00' at row 7"):
        prepare(spec, loaded(df))
    with pytest.raises(SpecError, match="not a strftime format"):
        load_spec(SPEC + "time_format: dd/mm/yyyy\n")
    with pytest.raises(SpecError, match="unknown time zone 'Europe/Roma'"):
        load_spec(SPEC + "timezone: Europe/Roma\n")


def test_empty_window_and_missing_time_index():
    spec = load_spec(SPEC + "train_window: {start: 2020-01-01}\n")
    with pytest.raises(DataError, match="holds no rows of data.csv .*move the window"):
        prepare(spec, loaded(frame()))
    with pytest.raises(DataError, match="no time index: set `time_column:`.*likely: time"):
        set_time_index(frame(), None, "data.csv")


def test_profile_is_json_and_supports_psi():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "ghi": rng.uniform(0, 1000, 2000),
            "flag": rng.integers(0, 2, 2000).astype(bool),
            "site": ["a"] * 2000,
        }
    )
    X.loc[:9, "ghi"] = np.nan
    prof = reference_profile(X, rng.normal(2, 1, 2000), target=rng.normal(2, 1, 2000))
    assert json.loads(json.dumps(prof)) == prof
    ghi = prof["columns"]["ghi"]
    assert (ghi["count"], ghi["nan_count"]) == (1990, 10)
    assert sum(ghi["quantiles"]["counts"]) == 1990 and len(ghi["quantiles"]["counts"]) == 10
    assert sum(ghi["histogram"]["counts"]) == 1990 and len(ghi["histogram"]["edges"]) == 21
    assert ghi["mean"] == pytest.approx(np.nanmean(X["ghi"])) and ghi["std"] == pytest.approx(
        np.nanstd(X["ghi"])
    )
    assert prof["skipped"] == {"site": X["site"].dtype.name} and "flag" in prof["columns"]
    assert psi(ghi, rng.uniform(0, 1000, 5000)) < 0.02
    assert psi(ghi, rng.uniform(300, 1300, 5000)) > 0.25  # a shifted distribution
    assert bin_counts(ghi, [-1e9, 1e9]).tolist() == [1] + [0] * 8 + [1]  # outer bins are open-ended


def test_profile_of_a_mostly_zero_column_merges_bins():
    night = np.r_[np.zeros(600), np.linspace(0.1, 3, 400)]
    col = column_profile(night)
    assert col["quantiles"]["edges"][0] == 0.0 and len(col["quantiles"]["counts"]) < 10
    assert col["quantiles"]["counts"][0] == 600  # every zero in the first bin
