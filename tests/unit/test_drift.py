"""Drift statistics: equal to scipy's within 1e-9, the profile's reference sample, flags and edge cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from maestrale.errors import InvalidInput
from maestrale.stats.drift import DriftThresholds, drift_report, ks_wasserstein
from maestrale.stats.profile import (
    bin_counts,
    column_profile,
    decode_sample,
    psi,
    psi_from_counts,
    reference_profile,
    reference_sample,
    sample_order_statistics,
)

TOL = 1e-9


def _pair(kind: str, rng: np.random.Generator, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "continuous":
        return rng.normal(0, 1, m), rng.normal(rng.normal(), rng.uniform(0.5, 2), n)
    if kind == "ties":  # few distinct values, many shared between the two sides
        return rng.integers(0, 5, m).astype(float), rng.integers(0, 7, n).astype(float)
    if kind == "rounded":
        return np.round(rng.normal(0, 1, m), 1), np.round(rng.normal(0.3, 1.2, n), 1)
    if kind == "disjoint":
        return rng.uniform(0, 1, m), rng.uniform(5, 6, n)
    if kind == "large_offset":  # PV-like magnitudes: precision must hold away from 0
        return rng.normal(1e4, 3, m), rng.normal(1e4 + 1, 3, n)
    return np.full(m, 2.0), rng.integers(0, 4, n).astype(float)  # constant reference


KINDS = ["continuous", "ties", "rounded", "disjoint", "large_offset", "constant"]


@pytest.mark.parametrize("kind", KINDS)
def test_ks_and_wasserstein_equal_scipy(kind: str) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(150):
        m, n = int(rng.integers(1, 300)), int(rng.integers(1, 500))
        a, b = (np.sort(x) for x in _pair(kind, rng, m, n))
        ks, w = ks_wasserstein(a, b)
        assert ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
        assert w == pytest.approx(stats.wasserstein_distance(a, b), abs=TOL, rel=TOL)


def test_ks_and_wasserstein_on_large_unequal_samples() -> None:
    rng = np.random.default_rng(7)
    a, b = np.sort(rng.normal(0, 1, 2048)), np.sort(rng.normal(0.1, 1.1, 200_000))
    ks, w = ks_wasserstein(a, b)
    assert abs(ks - stats.ks_2samp(a, b).statistic) <= TOL
    assert abs(w - stats.wasserstein_distance(a, b)) <= TOL


def _frames(rng: np.random.Generator, n_ref: int, n_cur: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref = pd.DataFrame(
        {
            "ghi": rng.gamma(2.0, 150.0, n_ref),
            "temp": np.round(rng.normal(15, 5, n_ref), 1),  # ties
            "night": np.where(rng.uniform(size=n_ref) < 0.5, 0.0, rng.uniform(0, 900, n_ref)),
            "wind": rng.weibull(2.0, n_ref) * 6,
        }
    )
    cur = pd.DataFrame(
        {
            "ghi": rng.gamma(2.0, 180.0, n_cur),  # shifted
            "temp": np.round(rng.normal(15, 5, n_cur), 1),
            "night": np.where(rng.uniform(size=n_cur) < 0.3, 0.0, rng.uniform(0, 900, n_cur)),
            "wind": rng.weibull(2.0, n_cur) * 6,
        }
    )
    ref.loc[::37, "temp"] = np.nan
    cur.loc[::11, "wind"] = np.nan
    cur.loc[5, "ghi"] = np.inf  # inf counts as missing, like NaN
    return ref, cur


def _finite(x: pd.Series) -> np.ndarray:
    v = x.to_numpy(dtype="float64")
    return v[np.isfinite(v)]


@pytest.mark.parametrize(("n_ref", "n_cur"), [(3000, 700), (1500, 25_000)])
def test_report_against_a_reference_matrix_equals_scipy(n_ref: int, n_cur: int) -> None:
    ref, cur = _frames(np.random.default_rng(n_cur), n_ref, n_cur)
    report = drift_report(ref, cur)
    assert report.reference == "matrix"
    for f in report.features:
        a, b = _finite(ref[f.name]), _finite(cur[f.name])
        expected = stats.ks_2samp(a, b)  # exact p-value for the small window, asymptotic for the large
        assert abs(f.ks - expected.statistic) <= TOL and abs(f.ks_pvalue - expected.pvalue) <= TOL
        assert abs(f.wasserstein - stats.wasserstein_distance(a, b)) <= TOL
        assert f.wasserstein_norm == pytest.approx(f.wasserstein / np.std(a), rel=1e-12)
        col = column_profile(a)
        ref_counts, cur_counts = col["quantiles"]["counts"], bin_counts(col, b)
        assert abs(f.js - jensenshannon(ref_counts, cur_counts, base=2)) <= TOL
        assert abs(f.psi - psi(col, b)) <= TOL
        assert (f.n_ref, f.n_ref_sample, f.n_cur) == (a.size, a.size, b.size)
        assert f.nan_share == pytest.approx(1 - b.size / len(cur))


def test_report_against_a_profile_equals_scipy_on_its_sample() -> None:
    rng = np.random.default_rng(3)
    ref, cur = _frames(rng, 20_000, 15_000)
    prof = json.loads(json.dumps(reference_profile(ref, rng.normal(0, 1, 20_000))))
    yhat = rng.normal(0.5, 1, 15_000)
    report = drift_report(prof, cur, predictions=yhat)
    assert report.reference == "profile" and report.notes == []
    for f in [*report.features, report.predictions]:
        col = prof["predictions"] if f.name == "<predictions>" else prof["columns"][f.name]
        a = reference_sample(col)
        b = yhat if f.name == "<predictions>" else _finite(cur[f.name])
        expected = stats.ks_2samp(a, b)
        assert (f.n_ref, f.n_ref_sample) == (col["count"], 2048)
        assert abs(f.ks - expected.statistic) <= TOL and abs(f.ks_pvalue - expected.pvalue) <= TOL
        assert abs(f.wasserstein - stats.wasserstein_distance(a, b)) <= TOL
        assert f.wasserstein_norm == pytest.approx(f.wasserstein / col["std"], rel=1e-12)
        assert abs(f.psi - psi(col, b)) <= TOL
        assert abs(f.js - jensenshannon(col["quantiles"]["counts"], bin_counts(col, b), base=2)) <= TOL
    assert "ghi" in report.drifted_features and report.predictions.drifted
    assert "<predictions>" not in report.drifted_features  # the share counts features only


def test_sample_is_evenly_spaced_order_statistics_and_round_trips_json() -> None:
    rng = np.random.default_rng(11)
    x = rng.lognormal(3, 1, 100_003)
    col = column_profile(x)
    restored = json.loads(json.dumps(col))
    s = reference_sample(restored)
    assert s.dtype == np.float64 and s.size == 2048 and np.all(np.diff(s) >= 0)
    j = np.arange(2048)
    assert np.array_equal(s, np.sort(x)[((2 * j + 1) * x.size) // 4096])  # bit for bit
    assert np.array_equal(reference_sample(column_profile(rng.permutation(x))), s)  # row order is moot
    # its ECDF is within 1/(2k) of the full reference's, ties or not: KS(sample, full) ≤ 1/4096
    assert stats.ks_2samp(s, x).statistic <= 1 / 4096 + 1e-15
    ties = np.round(x, 0)
    assert stats.ks_2samp(reference_sample(column_profile(ties)), ties).statistic <= 1 / 4096 + 1e-15
    assert len(restored["sample"]["data"]) < 20_000  # compact: ~16 kB for 2,048 random doubles
    small = column_profile([3.0, np.nan, 1.0, 2.0, 2.0])
    assert reference_sample(small).tolist() == [1.0, 2.0, 2.0, 3.0]  # n ≤ k: every value
    assert reference_sample(column_profile([np.nan])).size == 0
    assert sample_order_statistics(np.arange(10.0), 4).tolist() == [1.0, 3.0, 6.0, 8.0]
    with pytest.raises(ValueError, match="unknown reference-sample codec 'raw'"):
        decode_sample({"size": 1, "codec": "raw", "data": ""})


def test_psi_known_values() -> None:
    assert float(psi_from_counts(np.array([50, 50]), np.array([80, 20]))) == pytest.approx(
        0.3 * np.log(1.6) + 0.3 * np.log(2.5), abs=1e-15
    )
    assert float(psi_from_counts(np.array([10, 20, 30]), np.array([20, 40, 60]))) == 0.0
    # an empty bin is floored at 1e-4, so PSI stays finite
    expected = (0.5 - 1e-4) * np.log(0.5 / 1e-4) + (1.0 - 0.5) * np.log(1.0 / 0.5)
    assert float(psi_from_counts(np.array([5, 5]), np.array([0, 10]))) == pytest.approx(expected)
    assert np.isnan(psi_from_counts(np.array([1, 1]), np.array([0, 0])))
    rows = psi_from_counts(np.array([[50, 50], [10, 30]]), np.array([[80, 20], [10, 30]]))
    assert rows.shape == (2,) and rows[1] == 0.0


def test_flags_thresholds_and_share() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, 4000) for i in range(4)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.6 if i == 0 else 0.0, 1, 4000) for i in range(4)})
    default = drift_report(ref, cur)
    assert default.drifted_features == ["x0"] and default.n_drifted == 1
    assert default.share_drifted == 0.25 and not default.dataset_drift
    assert set(default.features[0].flags) == {"psi", "wasserstein_norm"}
    strict = DriftThresholds(psi=None, wasserstein_norm=None, ks=0.0, share=0.25)
    report = drift_report(ref, cur, thresholds=strict)
    assert report.drifted_features == ["x0", "x1", "x2", "x3"] and report.dataset_drift
    off = DriftThresholds(psi=None, wasserstein_norm=None)
    assert drift_report(ref, cur, thresholds=off).n_drifted == 0  # nothing set, nothing flagged
    pv = drift_report(ref, cur, thresholds=DriftThresholds(psi=None, wasserstein_norm=None, ks_pvalue=1e-6))
    assert pv.drifted_features == ["x0"] and pv.features[0].flags == {"ks_pvalue": True}
    frame = default.to_frame()
    assert list(frame.index) == ["x0", "x1", "x2", "x3"] and bool(frame.loc["x0", "flag_psi"])
    assert {"psi", "ks", "ks_pvalue", "wasserstein", "wasserstein_norm", "js", "nan_share"} <= set(frame)


def test_constant_columns() -> None:
    ref = {"c": np.full(500, 3.0)}
    same = drift_report(ref, {"c": np.full(200, 3.0)}).features[0]
    assert (same.psi, same.ks, same.wasserstein, same.wasserstein_norm, same.js) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert not same.drifted
    moved = drift_report(ref, {"c": np.full(200, 3.5)}).features[0]
    assert moved.wasserstein == pytest.approx(0.5) and moved.wasserstein_norm == np.inf and moved.drifted
    assert moved.ks == 1.0


def test_missing_values_and_empty_windows() -> None:
    ref = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0)})
    dead = drift_report(ref, pd.DataFrame({"a": np.arange(50.0), "b": np.full(50, np.nan)}))
    b = dead.features[1]
    assert b.n_cur == 0 and b.nan_share == 1.0 and np.isnan(b.ks) and np.isnan(b.psi)
    assert b.drifted and b.note == "no finite values in the current window"  # a dead sensor is drift
    with pytest.raises(InvalidInput, match="the current window is empty"):
        drift_report(ref, ref.iloc[:0])
    with pytest.raises(InvalidInput, match=r"lacks columns \['b'\]"):
        drift_report(ref, ref[["a"]])
    with pytest.raises(InvalidInput, match=r"columns \['z'\] are not in the reference"):
        drift_report(ref, ref, columns=["z"])
    with pytest.raises(InvalidInput, match="column 'a' has dtype .*; drift needs numbers"):
        drift_report(ref, pd.DataFrame({"a": ["x"], "b": [1.0]}))
    with pytest.raises(InvalidInput, match="come with `columns=`"):
        drift_report(ref, np.zeros((3, 2)))
    with pytest.raises(InvalidInput, match="`predictions` go with a profile"):
        drift_report(ref, ref, predictions=np.zeros(3))
    arr = drift_report(ref, np.c_[np.arange(10.0), np.arange(10.0)], columns=["a", "b"])
    assert [f.name for f in arr.features] == ["a", "b"]


def test_profile_errors_and_profiles_without_a_sample() -> None:
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 1000)})
    prof = reference_profile(ref, rng.normal(0, 1, 1000))
    with pytest.raises(InvalidInput, match=r"columns \['b'\] are not in the profile; it has \['a'\]"):
        drift_report(prof, ref, columns=["b"])
    old = json.loads(json.dumps(prof))  # a profile stored before samples existed
    for col in (old["columns"]["a"], old["predictions"]):
        del col["sample"]
    report = drift_report(old, pd.DataFrame({"a": rng.normal(1, 1, 500)}))
    f = report.features[0]
    assert np.isnan(f.ks) and np.isnan(f.wasserstein) and f.n_ref_sample == 0
    assert f.psi > 0.2 and f.drifted and "no reference sample" in report.notes[0]
