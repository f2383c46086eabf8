"""Reference profiles: what the training data and the predictions looked like, without the data itself.

>>> import numpy as np, pandas as pd
>>> df = pd.DataFrame({"ghi": np.linspace(0, 1000, 500)})
>>> prof = reference_profile(df, np.linspace(0, 3, 500))
>>> prof["columns"]["ghi"]["quantiles"]["counts"]
[50, 50, 50, 50, 50, 50, 50, 50, 50, 50]
>>> round(psi(prof["columns"]["ghi"], np.linspace(0, 1000, 300)), 6)
0.0

The monitor compares production data with this profile. Layout (JSON, schema `maestrale.profile/1`):

```
{"schema": "maestrale.profile/1", "rows": N, "quantile_bins": 10, "histogram_bins": 20,
 "columns": {"<feature>": COLUMN, ...}, "predictions": COLUMN, "target": COLUMN (optional),
 "skipped": {"<column>": "<dtype>"}}           # non-numeric columns, not profiled
COLUMN = {"count": finite values, "nan_count": NaN/inf values, "mean", "std", "min", "max",
          "quantiles": {"edges": [e0 … e10], "counts": [c1 … c10]},
          "histogram": {"edges": [h0 … h20], "counts": [...]}}
```

- `quantiles.edges` are the reference's 0, 10, …, 100 % quantiles with repeated values merged (a PV
  column that is 0 half the time has fewer bins). Bin i holds values in `(edges[i], edges[i+1]]`, the first
  bin also everything ≤ edges[1] and the last everything > edges[-2]: open-ended, so new data outside
  the reference range still falls in a bin. `bin_counts(column, values)` applies exactly this rule.
- PSI = Σ (p_new − p_ref) · ln(p_new / p_ref) over those bins (`psi()`); the reference CDF at each
  interior edge is cumsum(counts)/count, so a KS-style distance is max |F_new(e) − F_ref(e)| over edges.
- `histogram` is an equal-width histogram between min and max, for plots and a finer look.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

SCHEMA = "maestrale.profile/1"
QUANTILE_BINS = 10
HISTOGRAM_BINS = 20
# Keeps PSI finite when a bin is empty on one side (the usual choice in credit-scoring practice).
PSI_EPSILON = 1e-4


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def column_profile(
    values: ArrayLike, quantile_bins: int = QUANTILE_BINS, histogram_bins: int = HISTOGRAM_BINS
) -> dict:
    """Summary, quantile bins and histogram of one numeric column (NaN and inf counted, then left out).

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
        }
    lo, hi = float(finite.min()), float(finite.max())
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, quantile_bins + 1)))
    if edges.size == 1:  # a constant column: one bin
        edges = np.array([lo, hi])
    quantile_counts = _bin(edges, finite)
    hist_counts, hist_edges = np.histogram(
        finite, bins=histogram_bins, range=(lo, hi if hi > lo else lo + 1.0)
    )
    return {
        **out,
        "mean": _num(finite.mean()),
        "std": _num(finite.std()),
        "min": lo,
        "max": hi,
        "quantiles": {"edges": edges.tolist(), "counts": quantile_counts.tolist()},
        "histogram": {"edges": hist_edges.tolist(), "counts": hist_counts.astype(int).tolist()},
    }


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


def psi(column: dict, values: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of new `values` against a profiled column (0 = same distribution;
    > 0.1 is usually read as a moderate shift, > 0.25 as a large one)."""
    ref = np.asarray(column["quantiles"]["counts"], dtype="float64")
    new = bin_counts(column, values).astype("float64")
    if not ref.sum() or not new.sum():
        return float("nan")
    p, q = np.maximum(ref / ref.sum(), epsilon), np.maximum(new / new.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def reference_profile(
    df: Any,
    predictions: ArrayLike,
    *,
    target: ArrayLike | None = None,
    quantile_bins: int = QUANTILE_BINS,
    histogram_bins: int = HISTOGRAM_BINS,
) -> dict[str, Any]:
    """A JSON-serialisable profile of each numeric column of `df`, of `predictions` and of `target`.

    `df` is any frame with `.columns` and `df[col].to_numpy()` (pandas); bool columns count as numeric.

    >>> prof = reference_profile(X_train, model.predict(X_test), target=y_train)  # doctest: +SKIP
    >>> prof["predictions"]["mean"]  # doctest: +SKIP
    0.83
    """
    columns: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in df.columns:
        col = df[name]
        # pandas' nullable dtypes (Float64, Int64, boolean) have a numpy kind too
        if getattr(col.dtype, "kind", "O") in "biuf":
            values = col.to_numpy(dtype="float64", na_value=np.nan)
            columns[str(name)] = column_profile(values, quantile_bins, histogram_bins)
        else:
            skipped[str(name)] = str(col.dtype)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "rows": len(df),
        "quantile_bins": quantile_bins,
        "histogram_bins": histogram_bins,
        "columns": columns,
        "predictions": column_profile(predictions, quantile_bins, histogram_bins),
    }
    if target is not None:
        out["target"] = column_profile(target, quantile_bins, histogram_bins)
    if skipped:
        out["skipped"] = skipped
    return out
