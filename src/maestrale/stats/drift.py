"""Drift of features and predictions against the training profile (or a reference matrix), vectorised.

>>> import numpy as np, pandas as pd
>>> from maestrale.stats.profile import reference_profile
>>> rng = np.random.default_rng(0)
>>> train = pd.DataFrame({"ghi": rng.normal(500, 100, 5000), "temp": rng.normal(15, 5, 5000)})
>>> prof = reference_profile(train, rng.normal(0, 1, 5000))
>>> window = pd.DataFrame({"ghi": rng.normal(560, 100, 20000), "temp": rng.normal(15, 5, 20000)})
>>> report = drift_report(prof, window, predictions=rng.normal(0, 1, 20000))
>>> report.drifted_features, report.predictions.drifted
(['ghi'], False)
>>> report.to_frame().loc["ghi", ["psi", "ks", "wasserstein_norm", "js"]].round(2).tolist()
[0.35, 0.24, 0.61, 0.25]

What each statistic is (NaN and ±inf are dropped and counted in `nan_share`):

- `psi`: population stability index on the profile's reference-quantile bins, with the bin rule and
  the 1e-4 floor of `profile.psi` (same value).
- `ks`, `ks_pvalue`: two-sample Kolmogorov–Smirnov of the reference against the current values, equal
  to `scipy.stats.ks_2samp(reference, current)`; the p-value is exact when both sides have ≤ 10,000
  values and Smirnov's asymptotic one above, as scipy's `method="auto"`.
- `wasserstein`: W1, equal to `scipy.stats.wasserstein_distance(reference, current)`, in the feature's
  unit; `wasserstein_norm` divides it by the full reference's std (ddof 0, Evidently's normalisation);
  a constant reference gives 0 when nothing moved and inf otherwise.
- `js`: Jensen–Shannon distance in base 2 (0 = same shares, 1 = disjoint) between the reference and
  current shares of the same quantile bins, equal to `scipy.spatial.distance.jensenshannon(..., base=2)`.

Against a profile, the "reference" of KS and Wasserstein is the profile's sample (≤ 2,048 evenly spaced
order statistics, within 1/4,096 of the full reference's CDF), so its p-value is that of a 2,048-value
reference; PSI and JS use the full reference's bin counts. Against a reference matrix it is the full column.

How it is fast: each current column is sorted once (the one O(n log n) step; float64, contiguous). The
ECDFs are step functions, so every statistic then needs only where the m reference values fall in the
sorted current values (`searchsorted`, O(m log n)) and the sums of the current values between those
positions (one `np.add.reduceat` pass): no pandas, no concatenated arrays, no second sort.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats
from scipy.spatial.distance import jensenshannon

from maestrale.errors import InvalidInput
from maestrale.stats.profile import (
    QUANTILE_BINS,
    psi_from_counts,
    quantile_edges,
    reference_sample,
    sorted_bin_counts,
)

if TYPE_CHECKING:
    import pandas as pd

JS_BASE = 2.0
# scipy's ks_2samp(method="auto") computes exact p-values up to this many values on each side
KS_EXACT_MAX = 10_000
PREDICTIONS = "<predictions>"  # the predictions' row name in reports
STATISTICS = ("psi", "ks", "ks_pvalue", "wasserstein_norm", "js")


class DriftThresholds(BaseModel):
    """When a statistic flags a feature as drifted (None: not used); a feature is drifted when any set
    flag fires, the data set when the share of drifted features reaches `share`.

    Defaults: PSI ≥ 0.2 (the usual line for a significant shift) or Wasserstein ≥ 0.1 reference std
    (Evidently's default for large samples). KS p-values are off by default: with windows of 10⁵ rows
    they flag shifts far too small to matter.

    >>> DriftThresholds(js=0.1, ks_pvalue=0.01).flags({"psi": 0.05, "ks_pvalue": 1e-5, "js": 0.02,
    ...                                              "wasserstein_norm": 0.01, "ks": 0.1})
    {'psi': False, 'ks_pvalue': True, 'wasserstein_norm': False, 'js': False}
    """

    psi: float | None = 0.2
    ks: float | None = None
    ks_pvalue: float | None = Field(default=None, description="flag when the p-value is below this")
    wasserstein_norm: float | None = 0.1
    js: float | None = None
    share: float = Field(default=0.5, ge=0.0, le=1.0)

    def flags(self, values: Mapping[str, float]) -> dict[str, bool]:
        """One flag per set threshold; a NaN statistic never flags."""
        out: dict[str, bool] = {}
        for stat in STATISTICS:
            limit = getattr(self, stat)
            if limit is not None:
                v = values[stat]
                out[stat] = bool(v < limit) if stat == "ks_pvalue" else bool(v >= limit)
        return out


class FeatureDrift(BaseModel):
    """Drift of one feature (or of the predictions). `n_ref_sample` is how many reference values KS and
    Wasserstein compared with: the profile's sample, or the whole column of a reference matrix."""

    name: str
    n_ref: int
    n_ref_sample: int
    n_cur: int
    nan_share: float
    psi: float
    ks: float
    ks_pvalue: float
    wasserstein: float
    wasserstein_norm: float
    js: float
    flags: dict[str, bool] = Field(default_factory=dict)
    drifted: bool
    note: str | None = None


class DriftReport(BaseModel):
    """Per-feature drift, the predictions' drift, and the share of drifted features.

    >>> report.share_drifted, report.dataset_drift  # doctest: +SKIP
    (0.25, False)
    """

    reference: Literal["profile", "matrix"]
    features: list[FeatureDrift]
    predictions: FeatureDrift | None = None
    thresholds: DriftThresholds
    n_drifted: int
    share_drifted: float
    dataset_drift: bool
    drifted_features: list[str]
    js_base: float = JS_BASE
    notes: list[str] = Field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (and a `<predictions>` row), indexed by name; flags as `flag_<stat>`.

        >>> report.to_frame()[["psi", "ks", "drifted"]]  # doctest: +SKIP
        """
        import pandas as pd

        rows = [*self.features, *([self.predictions] if self.predictions else [])]
        records = [
            {**f.model_dump(exclude={"flags"}), **{f"flag_{k}": v for k, v in f.flags.items()}} for f in rows
        ]
        return pd.DataFrame.from_records(records).set_index("name")


@dataclass
class _Reference:
    n: int  # finite reference values behind the bin counts
    std: float | None
    edges: np.ndarray
    counts: np.ndarray
    sample: np.ndarray | None  # sorted finite values KS and Wasserstein compare with


def _finite_sorted(values: np.ndarray) -> np.ndarray:
    s = np.sort(values)  # NaN sorts last, after +inf; -inf first: the finite values are one slice
    lo = int(np.searchsorted(s, -np.inf, side="right"))
    hi = int(np.searchsorted(s, np.inf, side="left"))
    return s[lo:hi]


def _chunk_sums(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    # sums of x[bounds[i]:bounds[i+1]] for non-decreasing bounds ending at len(x): one pass over x;
    # reduceat returns x[i] instead of 0 for an empty slice, so it only sees the non-empty ones
    starts, ends = bounds[:-1], bounds[1:]
    out = np.zeros(starts.size)
    full = starts < ends
    if full.any():
        out[full] = np.add.reduceat(x, starts[full])
    return out


def ks_wasserstein(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 distance of two SORTED finite samples, in O(m log n + n).

    Between two consecutive distinct reference values u_j < u_j+1 the reference ECDF is a constant
    c_j, and the current ECDF F climbs from its value at u_j to its value just below u_j+1, crossing c_j
    at most once, at the current value of rank ⌈c_j·n⌉. So |c_j − F| peaks at the ends (KS), and
    ∫|c_j − F| splits into two pieces whose integrals are counts times bounds minus sums of current
    values (Wasserstein) — the exact quantities scipy sums over the merged sample.

    >>> a, b = np.sort([0.0, 1.0, 2.0, 5.0]), np.sort([0.5, 1.0, 3.0])
    >>> ks, w = ks_wasserstein(a, b)
    >>> bool(ks == stats.ks_2samp(a, b).statistic), bool(abs(w - stats.wasserstein_distance(a, b)) < 1e-12)
    (True, True)
    """
    m, n = ref.size, cur.size
    last = np.flatnonzero(np.r_[ref[1:] != ref[:-1], True])  # last index of each distinct value
    u, c_count = ref[last], last + 1  # distinct reference values, reference count ≤ each
    left = np.searchsorted(cur, u, side="left")  # current values < u_j
    right = np.searchsorted(cur, u, side="right")  # current values ≤ u_j
    cdf = c_count / m
    # the same float operations as ks_2samp: count/m − count/n at u_j, just below u_j+1, below u_0
    diffs = np.concatenate(([-left[0] / n], cdf - right / n, cdf[:-1] - left[1:] / n))
    ks = float(np.max(np.abs(diffs)))

    k = u.size
    alpha, beta, c = u[:-1], u[1:], cdf[:-1]
    p, e = right[:-1], left[1:]  # current values in segment j have indices p_j … e_j − 1
    t = (c_count[:-1] * n + m - 1) // m  # ⌈c_j·n⌉ in integers: F reaches c_j at cur[t − 1]
    q = np.clip(t - 1, p, e)
    x_star = np.clip(cur[t - 1], alpha, beta)  # F < c_j on [u_j, x*)
    bounds = np.empty(3 * k + 1, dtype=np.int64)
    bounds[0], bounds[1::3], bounds[2::3] = 0, left, right
    bounds[3::3] = np.r_[q, n]
    sums = _chunk_sums(cur, bounds)  # [0,L0) [L0,R0) [R0,q0) [q0,L1) … [R_k-1, n)
    below, rest = sums[2::3][:-1], sums[3::3]
    # ∫ P over [α, β) and [α, x*), P = current count ≤ x: P(α)·width + Σ (end − value) over the values inside
    int_seg = p * (beta - alpha) + (e - p) * beta - (below + rest)
    int_low = p * (x_star - alpha) + (q - p) * x_star - below
    # ∫|c − P/n| = ∫(P/n − c) + 2∫(c − P/n)⁺, the positive part living on [α, x*)
    segments = int_seg / n - c * (beta - alpha) + 2.0 * (c * (x_star - alpha) - int_low / n)
    tails = (left[0] * u[0] - sums[0]) + (sums[-1] - (n - right[-1]) * u[-1])  # F_ref = 0 below, 1 above
    return ks, float(tails / n + segments.sum())


def _ks_pvalues(ks: np.ndarray, n_ref: np.ndarray, n_cur: np.ndarray, exact: dict[int, Any]) -> np.ndarray:
    # scipy's asymptotic branch, vectorised: kstwo.sf(D, round(n1·n2 / (n1 + n2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        en = np.round(n_ref * n_cur / (n_ref + n_cur))
        out = np.clip(stats.kstwo.sf(ks, np.maximum(en, 1)), 0, 1)
    for i, (a, b) in exact.items():  # small samples: scipy's exact p-value, cheap at that size
        out[i] = stats.ks_2samp(a, b).pvalue
    return np.where(np.isfinite(ks), out, np.nan)


def _pad(rows: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(rows), max((r.size for r in rows), default=0)))
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def _is_profile(reference: Any) -> bool:
    schema = reference.get("schema", "") if isinstance(reference, Mapping) else ""
    return str(schema).startswith("maestrale.profile/")


def _column_source(data: Any, columns: Sequence[str] | None, what: str) -> tuple[list[str], Any]:
    """Names and a `get(name) -> float64 array` for a DataFrame, a mapping of arrays or a 2-D array."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or columns is None or len(columns) != data.shape[1]:
            raise InvalidInput(
                f"{what}: a numpy array must be 2-D (rows × features) and come with `columns=` naming "
                f"each of its {data.shape[-1] if data.ndim else 0} columns"
            )
        pos = {str(c): i for i, c in enumerate(columns)}
        return list(pos), lambda name: np.asarray(data[:, pos[name]], dtype="float64")
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
        by_name = {str(c): c for c in data.columns}

        def get(name: str) -> np.ndarray:
            col = data[by_name[name]]
            if getattr(col.dtype, "kind", "O") not in "biuf":
                raise InvalidInput(f"{what}: column {name!r} has dtype {col.dtype}; drift needs numbers")
            return col.to_numpy(dtype="float64", na_value=np.nan)

        return list(by_name), get
    if isinstance(data, Mapping):
        return [str(k) for k in data], lambda name: np.asarray(data[name], dtype="float64").ravel()
    raise InvalidInput(f"{what}: expected a DataFrame, a mapping of name -> values or a 2-D array")


def _profile_columns(profile: Mapping[str, Any], names: list[str]) -> dict[str, Mapping[str, Any]]:
    cols = profile["columns"]
    missing = [n for n in names if n not in cols]
    if missing:
        raise InvalidInput(f"columns {missing} are not in the profile; it has {sorted(cols)}")
    return {n: cols[n] for n in names}


def _reference_of(col: Mapping[str, Any]) -> _Reference:
    return _Reference(
        n=int(col["count"]),
        std=col.get("std"),
        edges=np.asarray(col["quantiles"]["edges"], dtype="float64"),
        counts=np.asarray(col["quantiles"]["counts"], dtype="float64"),
        sample=reference_sample(col),
    )


def _matrix_reference(values: np.ndarray, quantile_bins: int) -> _Reference:
    ordered = _finite_sorted(values)
    if not ordered.size:
        return _Reference(0, None, np.empty(0), np.empty(0), ordered)
    edges = quantile_edges(ordered, quantile_bins)
    return _Reference(
        int(ordered.size), float(ordered.std()), edges, sorted_bin_counts(edges, ordered), ordered
    )


def _array_names(data: Any, columns: Sequence[str] | None) -> Sequence[str] | None:
    # `columns` also names the columns of a numpy array, which has none of its own
    return columns if isinstance(data, np.ndarray) else None


def _references(
    reference: Any, columns: Sequence[str] | None, with_predictions: bool, quantile_bins: int
) -> tuple[Literal["profile", "matrix"], dict[str, Callable[[], _Reference]], list[str]]:
    if _is_profile(reference):
        names = list(columns) if columns is not None else list(reference["columns"])
        cols = _profile_columns(reference, names)
        if with_predictions:
            cols[PREDICTIONS] = reference["predictions"]
        notes = []
        if any("sample" not in c for c in cols.values()):
            notes.append(
                "the profile has no reference sample (made before samples were stored): KS and "
                "Wasserstein are NaN; retrain to store a profile with one"
            )
        return "profile", {n: partial(_reference_of, c) for n, c in cols.items()}, notes
    if with_predictions:
        raise InvalidInput("`predictions` go with a profile; with a reference matrix, make them a column")
    ref_names, ref_get = _column_source(reference, _array_names(reference, columns), "reference")
    names = list(columns) if columns is not None else ref_names
    absent = [n for n in names if n not in ref_names]
    if absent:
        raise InvalidInput(f"columns {absent} are not in the reference; it has {ref_names}")
    # built one column at a time in the loop: only one sorted reference column is alive at once
    return (
        "matrix",
        {n: partial(lambda n: _matrix_reference(ref_get(n), quantile_bins), n) for n in names},
        [],
    )


def drift_report(
    reference: Any,
    current: Any,
    *,
    predictions: Any = None,
    columns: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    quantile_bins: int = QUANTILE_BINS,
) -> DriftReport:
    """Drift of `current` (a window of production data) against `reference`.

    `reference` is a profile (`profile.reference_profile`, as stored with each registered version) or a
    reference DataFrame / mapping / 2-D array with the same columns. `current` is a DataFrame, a mapping
    of name -> values, or a 2-D array with `columns=`. `columns` limits the features (default: all the
    profile's, or all the reference's); `predictions` (profile only) are compared with the profile's.
    `quantile_bins` applies to a reference matrix (a profile carries its own bins).

    >>> report = drift_report(reg.get_version("pv:3").profile, window, predictions=yhat)  # doctest: +SKIP
    >>> drift_report(train_frame, window, thresholds=DriftThresholds(ks_pvalue=0.01))  # doctest: +SKIP
    """
    thresholds = thresholds or DriftThresholds()
    kind, refs, notes = _references(reference, columns, predictions is not None, quantile_bins)
    cur_names, cur_get = _column_source(current, _array_names(current, columns), "current")
    names = [n for n in refs if n != PREDICTIONS]
    absent = [n for n in names if n not in cur_names]
    if absent:
        raise InvalidInput(f"the current data lacks columns {absent}; it has {cur_names}")

    def current_values(name: str) -> np.ndarray:
        v = np.asarray(predictions, dtype="float64").ravel() if name == PREDICTIONS else cur_get(name)
        if not v.size:
            raise InvalidInput(f"the current window is empty ({name!r} has no rows): drift needs data")
        return v

    rows: dict[str, dict[str, Any]] = {}
    exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ref_counts, cur_counts = [], []
    for i, (name, make_ref) in enumerate(refs.items()):
        ref = make_ref()
        cur, rows[name] = _column_row(name, ref, current_values(name))
        if max(rows[name]["n_ref_sample"], cur.size) <= KS_EXACT_MAX and np.isfinite(rows[name]["ks"]):
            assert ref.sample is not None  # a finite KS needs the reference sample
            exact[i] = (ref.sample, cur)
        ref_counts.append(ref.counts)
        cur_counts.append(sorted_bin_counts(ref.edges, cur) if ref.edges.size else np.empty(0))

    # vectorised across columns: bin statistics on zero-padded count matrices (an empty bin on both
    # sides adds exactly 0 to PSI and JS), p-values through one kstwo call
    ref_m, cur_m = _pad(ref_counts), _pad(cur_counts)
    psi = psi_from_counts(ref_m, cur_m)
    with np.errstate(invalid="ignore", divide="ignore"):
        js = jensenshannon(ref_m, cur_m, base=JS_BASE, axis=1) if ref_m.size else np.full(len(rows), np.nan)
    ks = np.array([r["ks"] for r in rows.values()], dtype="float64")
    n_ref = np.array([r["n_ref_sample"] for r in rows.values()], dtype="float64")
    n_cur = np.array([r["n_cur"] for r in rows.values()], dtype="float64")
    pvalues = _ks_pvalues(ks, n_ref, n_cur, exact)

    features: list[FeatureDrift] = []
    for i, row in enumerate(rows.values()):
        row.update(psi=float(psi[i]), js=float(js[i]), ks_pvalue=float(pvalues[i]))
        flags = thresholds.flags(row)
        features.append(FeatureDrift(**row, flags=flags, drifted=any(flags.values()) or not row["n_cur"]))
    pred = features.pop() if PREDICTIONS in rows else None
    drifted = [f.name for f in features if f.drifted]
    share = len(drifted) / len(features) if features else 0.0
    return DriftReport(
        reference=kind,
        features=features,
        predictions=pred,
        thresholds=thresholds,
        n_drifted=len(drifted),
        share_drifted=share,
        dataset_drift=bool(features) and share >= thresholds.share,
        drifted_features=drifted,
        notes=notes,
    )


def _column_row(name: str, ref: _Reference, raw: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    cur = _finite_sorted(raw)  # the one sort of this column
    sample = ref.sample
    n_sample = 0 if sample is None else sample.size
    ks, w = ks_wasserstein(sample, cur) if sample is not None and cur.size and n_sample else (np.nan, np.nan)
    row = {"name": name, "n_ref": ref.n, "n_ref_sample": n_sample, "n_cur": cur.size, "ks": ks}
    row.update(nan_share=1.0 - cur.size / raw.size, wasserstein=w, wasserstein_norm=_normalise(w, ref.std))
    if not cur.size:
        row["note"] = "no finite values in the current window"
    elif not ref.n:
        row["note"] = "no finite values in the reference"
    return cur, row


def _normalise(w: float, std: float | None) -> float:
    if std is None or not np.isfinite(w):
        return float("nan")
    if std > 0:
        return w / std
    return 0.0 if w == 0 else float("inf")  # any move of a constant is a shift


__all__ = ["DriftReport", "DriftThresholds", "FeatureDrift", "drift_report", "ks_wasserstein"]
