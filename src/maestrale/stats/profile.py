"""Reference profiles: what the training data and the predictions looked like, without the data itself.

>>> import numpy as np, pandas as pd
>>> df = pd.DataFrame({"ghi": np.linspace(0, 1000, 500)})
>>> prof = reference_profile(df, np.linspace(0, 3, 500))
>>> prof["columns"]["ghi"]["quantiles"]["counts"]
[50, 50, 50, 50, 50, 50, 50, 50, 50, 50]
>>> round(psi(prof["columns"]["ghi"], np.linspace(0, 1000, 300)), 6)
0.0

The monitor compares production data with this profile (`maestrale.stats.drift`). Layout (JSON, schema
`maestrale.profile/1`):

```
{"schema": "maestrale.profile/1", "rows": N, "quantile_bins": 10, "histogram_bins": 20, "sample_size": 2048,
 "columns": {"<feature>": COLUMN, ...}, "predictions": COLUMN, "target": COLUMN (optional),
 "skipped": {"<column>": "<dtype>"}}           # non-numeric columns, not profiled
COLUMN = {"count": finite values, "nan_count": NaN/inf values, "mean", "std", "min", "max",
          "quantiles": {"edges": [e0 … e10], "counts": [c1 … c10]},
          "histogram": {"edges": [h0 … h20], "counts": [...]},
          "sample": {"size": k, "codec": "f8le-shuffle-zlib-b64", "data": "<base64>"}}   # optional
```

- `quantiles.edges` are the reference's 0, 10, …, 100 % quantiles with repeated values merged (a PV
  column that is 0 half the time has fewer bins). Bin i holds values in `(edges[i], edges[i+1]]`, the first
  bin also everything ≤ edges[1] and the last everything > edges[-2]: open-ended, so new data outside
  the reference range still falls in a bin. `bin_counts(column, values)` applies exactly this rule.
- PSI = Σ (p_new − p_ref) · ln(p_new / p_ref) over those bins (`psi()`); the reference CDF at each
  interior edge is cumsum(counts)/count, so a KS-style distance is max |F_new(e) − F_ref(e)| over edges.
- `histogram` is an equal-width histogram between min and max, for plots and a finer look.
- `sample` is the reference in miniature, so that KS and Wasserstein are computed exactly against it
  without the training data: k = min(count, sample_size) evenly spaced order statistics, value j being
  x_(⌊(j + ½)·count / k⌋) of the sorted finite values (all of them when count ≤ k). Evenly spaced rather
  than random: its empirical CDF is within 1/(2k) of the full reference's everywhere (a random sample of
  2,048 is off by up to ~0.03, a third of a KS value worth an alert), it is the same for the same values
  in any row order, and it comes out sorted. Stored as the little-endian float64 bytes, byte-shuffled,
  zlib-compressed and base64-encoded: exact floats in 5–16 kB per column, 35–40 % of a JSON list.
  `reference_sample(column)` decodes it. The key is additive: readers of /1 profiles without it still
  work, and drift reports say that KS and Wasserstein need a profile with a sample.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

SCHEMA = "maestrale.profile/1"
QUANTILE_BINS = 10
HISTOGRAM_BINS = 20
SAMPLE_SIZE = 2048
SAMPLE_CODEC = "f8le-shuffle-zlib-b64"
# Keeps PSI finite when a bin is empty on one side (the usual choice in credit-scoring practice).
PSI_EPSILON = 1e-4


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def quantile_edges(sorted_finite: np.ndarray, quantile_bins: int = QUANTILE_BINS) -> np.ndarray:
    """The reference-quantile bin edges of sorted finite values: repeated quantiles merged, one bin
    `[v, v]` for a constant column.

    >>> quantile_edges(np.array([0.0, 0.0, 0.0, 1.0, 2.0]), 4).tolist()
    [0.0, 1.0, 2.0]
    """
    edges = np.unique(np.quantile(sorted_finite, np.linspace(0.0, 1.0, quantile_bins + 1)))
    if edges.size == 1:  # a constant column: one bin
        edges = np.array([sorted_finite[0], sorted_finite[-1]])
    return edges


def sorted_bin_counts(edges: np.ndarray, sorted_finite: np.ndarray) -> np.ndarray:
    """Counts of sorted finite values in the bins `(e_i, e_i+1]` of `edges`, outer bins open-ended.

    The same rule as `bin_counts`, in O(bins · log n) once the values are sorted.

    >>> sorted_bin_counts(np.array([0.0, 1.0, 2.0]), np.array([-5.0, 1.0, 1.5, 9.0])).tolist()
    [2, 2]
    """
    # bin i ends at interior edge i: values ≤ it (side="right") are in bins 0..i
    upto = np.searchsorted(sorted_finite, edges[1:-1], side="right")
    return np.diff(upto, prepend=0, append=sorted_finite.size).astype(int)


def sample_order_statistics(sorted_finite: np.ndarray, size: int = SAMPLE_SIZE) -> np.ndarray:
    """The profile's reference sample: `size` evenly spaced order statistics of sorted finite values.

    Value j is x_(⌊(j + ½)·n / size⌋), the middle of the j-th of `size` equal-probability blocks; all
    values when n ≤ size. Integer arithmetic, so the choice is exact for any n.

    >>> sample_order_statistics(np.arange(10.0), 5).tolist()
    [1.0, 3.0, 5.0, 7.0, 9.0]
    """
    n = sorted_finite.size
    if n <= size:
        return sorted_finite.copy()
    j = np.arange(size, dtype=np.int64)
    return sorted_finite[((2 * j + 1) * n) // (2 * size)]


def encode_sample(values: np.ndarray) -> dict[str, Any]:
    """The JSON form of a sample: exact float64 bytes, byte-shuffled then zlib'd (sorted values share
    their high bytes, so grouping byte planes is what lets zlib find the repeats), base64 text.

    >>> decode_sample(encode_sample(np.array([0.1, 2.5, 1e300]))).tolist()
    [0.1, 2.5, 1e+300]
    """
    raw = np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(-1, 8)
    packed = zlib.compress(raw.T.tobytes(), 9)
    return {"size": int(values.size), "codec": SAMPLE_CODEC, "data": base64.b64encode(packed).decode("ascii")}


def decode_sample(sample: dict[str, Any]) -> np.ndarray:
    """The float64 array stored by `encode_sample` (sorted, as the profile stores it)."""
    if sample.get("codec") != SAMPLE_CODEC:
        raise ValueError(f"unknown reference-sample codec {sample.get('codec')!r}; expected {SAMPLE_CODEC!r}")
    size = int(sample["size"])
    planes = np.frombuffer(zlib.decompress(base64.b64decode(sample["data"])), dtype=np.uint8)
    if planes.size != 8 * size:
        raise ValueError(f"reference sample holds {planes.size} bytes, expected {8 * size} for {size} values")
    return np.ascontiguousarray(planes.reshape(8, size).T).view("<f8").ravel().astype("float64")


def reference_sample(column: Mapping[str, Any]) -> np.ndarray | None:
    """The sorted reference sample of a profiled column, or None for a profile made before samples.

    >>> prof = column_profile(np.arange(5000.0))
    >>> s = reference_sample(prof); s.size, float(s[0]), float(s[-1])
    (2048, 1.0, 4998.0)
    """
    sample = column.get("sample")
    return None if sample is None else decode_sample(sample)


def column_profile(
    values: ArrayLike,
    quantile_bins: int = QUANTILE_BINS,
    histogram_bins: int = HISTOGRAM_BINS,
    sample_size: int = SAMPLE_SIZE,
) -> dict:
    """Summary, quantile bins, histogram and reference sample of one numeric column (NaN and inf
    counted, then left out).

    >>> column_profile([1.0, 2.0, np.nan])["nan_count"]
    1
    """
    v = np.asarray(values, dtype="float64").ravel()
    finite = v[np.isfinite(v)]
    out: dict[str, Any] = {"count": int(finite.size), "nan_count": int(v.size - finite.size)}
    if not finite.size:
        return {
            **out,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "quantiles": {"edges": [], "counts": []},
            "histogram": {"edges": [], "counts": []},
            "sample": encode_sample(finite),
        }
    # one sort serves the quantiles, the bin counts, min/max and the sample
    ordered = np.sort(finite)
    lo, hi = float(ordered[0]), float(ordered[-1])
    edges = quantile_edges(ordered, quantile_bins)
    hist_counts, hist_edges = _histogram(ordered, histogram_bins, lo, hi)
    return {
        **out,
        "mean": _num(finite.mean()),
        "std": _num(finite.std()),
        "min": lo,
        "max": hi,
        "quantiles": {"edges": edges.tolist(), "counts": sorted_bin_counts(edges, ordered).tolist()},
        "histogram": {"edges": hist_edges.tolist(), "counts": hist_counts.astype(int).tolist()},
        "sample": encode_sample(sample_order_statistics(ordered, sample_size)),
    }


def _histogram(ordered: np.ndarray, bins: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width histogram between min and max (a constant column gets `[v, v + 1]`), finite edges.

    >>> [e.tolist() for e in _histogram(np.array([-1.7e308, 1.7e308]), 2, -1.7e308, 1.7e308)]
    [[1, 1], [-1.7e+308, 0.0, 1.7e+308]]
    """
    top = hi if hi > lo else lo + 1.0
    with np.errstate(over="ignore"):
        width = top - lo
    if np.isfinite(width):
        try:
            return np.histogram(ordered, bins=bins, range=(lo, top))
        except ValueError:
            pass  # too narrow for distinct edges: a constant 1e20, where lo + 1 == lo
    # numpy refuses a range whose width overflows (-1e308..1e308); interpolated edges never overflow
    t = np.linspace(0.0, 1.0, bins + 1)
    edges = np.maximum.accumulate(lo * (1.0 - t) + top * t)
    return np.histogram(ordered, bins=edges)


def _bin(edges: np.ndarray, finite: np.ndarray) -> np.ndarray:
    # interior edges only: the outer bins are open-ended; side="left" puts a value equal to an edge
    # in the bin that edge closes, i.e. bins are (e_i, e_i+1]
    idx = np.searchsorted(edges[1:-1], finite, side="left")
    return np.bincount(idx, minlength=len(edges) - 1).astype(int)


def bin_counts(column: dict, values: ArrayLike) -> np.ndarray:
    """Counts of new `values` in a profiled column's quantile bins (NaN and inf ignored).

    >>> bin_counts({"quantiles": {"edges": [0.0, 1.0, 2.0], "counts": [1, 1]}}, [0.5, 1.5, 9.0]).tolist()
    [1, 2]
    """
    v = np.asarray(values, dtype="float64").ravel()
    return _bin(np.asarray(column["quantiles"]["edges"], dtype="float64"), v[np.isfinite(v)])


def psi_from_counts(ref: np.ndarray, new: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """PSI of bin counts along the last axis (rows are columns when 2-D); NaN where a side is empty.

    >>> round(float(psi_from_counts(np.array([50, 50]), np.array([80, 20]))), 6)
    0.415888
    """
    ref, new = np.asarray(ref, dtype="float64"), np.asarray(new, dtype="float64")
    rs, ns = ref.sum(axis=-1, keepdims=True), new.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, q = np.maximum(ref / rs, epsilon), np.maximum(new / ns, epsilon)
        out = np.sum((q - p) * np.log(q / p), axis=-1)
    return np.where((rs[..., 0] > 0) & (ns[..., 0] > 0), out, np.nan)


def psi(column: dict, values: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of new `values` against a profiled column (0 = same distribution;
    > 0.1 is usually read as a moderate shift, > 0.25 as a large one)."""
    ref = np.asarray(column["quantiles"]["counts"], dtype="float64")
    if not ref.size:
        return float("nan")
    return float(psi_from_counts(ref, bin_counts(column, values), epsilon))


#: A month needs at least this many training rows (a week of hourly data) to get its own bins.
MIN_MONTH_ROWS = 168


def _bins_only(values: np.ndarray, quantile_bins: int) -> dict[str, Any]:
    """The parts of `column_profile` that PSI and JS need: counts, moments and quantile bins."""
    finite = values[np.isfinite(values)]
    out: dict[str, Any] = {"count": int(finite.size), "nan_count": int(values.size - finite.size)}
    if not finite.size:
        return {**out, "mean": None, "std": None, "quantiles": {"edges": [], "counts": []}}
    ordered = np.sort(finite)
    edges = quantile_edges(ordered, quantile_bins)
    return {
        **out,
        "mean": _num(finite.mean()),
        "std": _num(finite.std()),
        "quantiles": {"edges": edges.tolist(), "counts": sorted_bin_counts(edges, ordered).tolist()},
    }


def monthly_profiles(
    columns: dict[str, np.ndarray], months: np.ndarray, quantile_bins: int = QUANTILE_BINS
) -> dict[str, Any]:
    """Quantile bins of each column per calendar month ("1".."12") with enough rows.

    Weather inputs are seasonal: a July week compared with a whole year of training data always
    "drifts" in temperature. Against the same months of the training data it drifts only when
    something changed. Bins only (no sample): PSI and JS, not KS or Wasserstein.

    >>> m = monthly_profiles({"t": np.arange(400.0)}, np.repeat([1, 2], 200))
    >>> sorted(m), m["1"]["rows"], m["1"]["columns"]["t"]["quantiles"]["edges"][-1]
    (['1', '2'], 200, 199.0)
    """
    out: dict[str, Any] = {}
    for month in range(1, 13):
        sel = months == month
        n = int(sel.sum())
        if n >= MIN_MONTH_ROWS:
            out[str(month)] = {
                "rows": n,
                "columns": {name: _bins_only(v[sel], quantile_bins) for name, v in columns.items()},
            }
    return out


def month_reference(profile: dict[str, Any], months: list[int]) -> dict[str, Any] | None:
    """A profile-shaped reference from the monthly bins of `months` (None if one is missing).

    Several months (a window across a month's end) are merged by taking the first month's edges and
    re-weighting is avoided: the window's dominant month is passed alone by the monitor.
    """
    by_month = profile.get("by_month") or {}
    picked: list[Any] = [by_month.get(str(m)) for m in months]
    if not picked or any(p is None for p in picked):
        return None
    first: dict[str, Any] = picked[0]
    out = {
        "schema": profile.get("schema", SCHEMA),
        "rows": first["rows"],
        "quantile_bins": profile.get("quantile_bins", QUANTILE_BINS),
        "columns": {k: v for k, v in first["columns"].items() if k != "<predictions>"},
    }
    if "<predictions>" in first["columns"]:
        out["predictions"] = first["columns"]["<predictions>"]
    return out


def reference_profile(
    df: Any,
    predictions: ArrayLike,
    *,
    target: ArrayLike | None = None,
    months: ArrayLike | None = None,
    quantile_bins: int = QUANTILE_BINS,
    histogram_bins: int = HISTOGRAM_BINS,
    sample_size: int = SAMPLE_SIZE,
) -> dict[str, Any]:
    """A JSON-serialisable profile of each numeric column of `df`, of `predictions` and of `target`.

    `df` is any frame with `.columns` and `df[col].to_numpy()` (pandas); bool columns count as numeric.
    Each column keeps a reference sample of up to `sample_size` evenly spaced order statistics, against
    which the monitor computes KS and Wasserstein exactly (`maestrale.stats.drift.drift_report`).
    With `months` (the calendar month of each row) the profile also gets `by_month`: quantile bins per
    month, so seasonal inputs are compared with the same season (`monthly_profiles`).

    >>> prof = reference_profile(X_train, model.predict(X_test), target=y_train)  # doctest: +SKIP
    >>> prof["predictions"]["mean"]  # doctest: +SKIP
    0.83
    >>> drift_report(prof, X_window, predictions=model.predict(X_window)).drifted_features  # doctest: +SKIP
    ['ghi']
    """
    columns: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in df.columns:
        col = df[name]
        # pandas' nullable dtypes (Float64, Int64, boolean) have a numpy kind too
        if getattr(col.dtype, "kind", "O") in "biuf":
            values = col.to_numpy(dtype="float64", na_value=np.nan)
            columns[str(name)] = column_profile(values, quantile_bins, histogram_bins, sample_size)
        else:
            skipped[str(name)] = str(col.dtype)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "rows": len(df),
        "quantile_bins": quantile_bins,
        "histogram_bins": histogram_bins,
        "sample_size": sample_size,
        "columns": columns,
        "predictions": column_profile(predictions, quantile_bins, histogram_bins, sample_size),
    }
    if target is not None:
        out["target"] = column_profile(target, quantile_bins, histogram_bins, sample_size)
    if months is not None:
        month_arr = np.asarray(months).ravel()
        if month_arr.size != len(df):
            raise ValueError(f"months has {month_arr.size} values for {len(df)} rows: pass one per row")
        values = {str(n): df[n].to_numpy(dtype="float64", na_value=np.nan) for n in columns}
        pred = np.asarray(predictions, dtype="float64").ravel()
        if pred.size == month_arr.size:  # predictions of the same rows (not of a holdout)
            values["<predictions>"] = pred
        out["by_month"] = monthly_profiles(values, month_arr, quantile_bins)
    if skipped:
        out["skipped"] = skipped
    return out


def _histogram_of(column: Any) -> dict[str, list[float] | list[int]] | None:
    # a stored profile is hostile data: anything but finite, increasing edges and counts that fit is left out
    hist = column.get("histogram") if isinstance(column, Mapping) else None
    if not isinstance(hist, Mapping):
        return None
    edges, counts = hist.get("edges"), hist.get("counts")
    if not (isinstance(edges, list) and isinstance(counts, list) and 0 < len(counts) <= 10_000):
        return None
    if len(edges) != len(counts) + 1:
        return None
    try:
        e = np.asarray(edges, dtype="float64")
        c = np.asarray(counts, dtype="float64")
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(e).all() and (np.diff(e) >= 0).all() and (c >= 0).all() and (c == np.floor(c)).all()):
        return None
    return {"edges": e.tolist(), "counts": c.astype(np.int64).tolist()}


def histograms(profile: Any) -> dict[str, dict[str, list[float] | list[int]]]:
    """Each profiled column's equal-width histogram, `{name: {"edges": [...], "counts": [...]}}`,
    for the UI (reference-vs-current plots); `<predictions>` and `<target>` when profiled.

    Columns without finite values (empty histogram) or with a malformed one are left out.

    >>> import pandas as pd
    >>> prof = reference_profile(pd.DataFrame({"ghi": [0.0, 500.0, 1000.0]}), [1.0, 2.0, 3.0])
    >>> h = histograms(prof)
    >>> sorted(h), h["ghi"]["counts"][:3], len(h["ghi"]["edges"])
    (['<predictions>', 'ghi'], [1, 0, 0], 21)
    """
    if not isinstance(profile, Mapping):
        return {}
    columns = profile.get("columns")
    named = dict(columns) if isinstance(columns, Mapping) else {}
    named.update({f"<{k}>": profile.get(k) for k in ("predictions", "target") if k in profile})
    out = {}
    for name, column in list(named.items())[:100_000]:
        hist = _histogram_of(column)
        if hist is not None:
            out[str(name)] = hist
    return out
