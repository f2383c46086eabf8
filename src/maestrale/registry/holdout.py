"""The holdout series stored with a version: what its forecast and the actuals were on the holdout.

Training builds it (`maestrale.training.holdout`); the registry checks it when a version is
registered and again when it is read (a row of the store is hostile data too: an old bug, a hand
edit or a tampered database must give a clear 404, never a 500 or a broken page). Layout (JSON,
schema `maestrale.holdout/1`):

```
{"schema": "maestrale.holdout/1",
 "rows": N,                        # holdout rows scored (before downsampling)
 "sampling": "all" | "even",       # "even": N > 1,000, rows at evenly spaced positions kept
 "times": ["2012-06-01T10:00:00Z", ...],  "actual": [...],  "forecast": [...],
 "entity": null | ["p50", ...],    # one per point when the rows carry an entity, else null
 "by_hour": [{"hour": 0, "n": 73, "mean": -0.01, "mae": 0.2}, ...],   # residuals of ALL N rows
 "folds": [{"fold": 1, "start": ..., "end": ..., "train_start": ..., "train_end": ...,
            "n_train": 4000, "n_test": 720, "metrics": {"nmae": 0.05, ...}}, ...]}
```

Residual = forecast − actual; `by_hour` groups by the UTC hour of the target time.

>>> doc = {"schema": SCHEMA, "rows": 1, "sampling": "all", "times": ["2012-06-01T10:00:00Z"],
...        "actual": [2.0], "forecast": [2.5], "entity": None, "by_hour": [], "folds": []}
>>> check_holdout(doc)["forecast"]
[2.5]
>>> check_holdout({**doc, "actual": [float("nan")]})
Traceback (most recent call last):
...
ValueError: holdout.actual[0] is not a finite number
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

SCHEMA = "maestrale.holdout/1"
#: Points kept per series: enough for a plot 1,000 px wide, small enough for every listing store.
MAX_POINTS = 1_000
MAX_FOLDS = 100
MAX_FOLD_METRICS = 200
MAX_ENTITY = 128  # the monitor's entity column width
#: How the answer for a version without a series starts (a remote client reads that as None).
NONE_PREFIX = "no holdout series"
_KEYS = {"schema", "rows", "sampling", "times", "actual", "forecast", "entity", "by_hour", "folds"}


class _Bad(ValueError):
    pass


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise _Bad(message)


def _count(value: Any, where: str, hi: int = 2**53) -> int:
    _need(type(value) is int and 0 <= value <= hi, f"{where} is not an integer from 0 to {hi}")
    return int(value)


def _number(value: Any, where: str) -> float:
    ok = type(value) in (int, float) and math.isfinite(value)
    _need(ok, f"{where} is not a finite number")
    return float(value)


def _time(value: Any, where: str) -> str:
    _need(isinstance(value, str) and len(value) <= 40, f"{where} is not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{where} is not an ISO 8601 time") from None
    _need(parsed.tzinfo is not None, f"{where} has no UTC offset")
    return str(value)


def _series(doc: dict[str, Any], key: str, n: int) -> list[float]:
    values = doc.get(key)
    if not isinstance(values, list) or len(values) != n:
        raise _Bad(f"holdout.{key} is not a list of {n} numbers")
    return [_number(v, f"holdout.{key}[{i}]") for i, v in enumerate(values)]


def _entities(values: Any, n: int) -> list[str] | None:
    if values is None:
        return None
    _need(isinstance(values, list) and len(values) == n, f"holdout.entity is not null or a list of {n}")
    for i, v in enumerate(values):
        _need(isinstance(v, str) and 0 < len(v) <= MAX_ENTITY, f"holdout.entity[{i}] is not an entity")
    return list(values)


def _by_hour(values: Any) -> list[dict[str, Any]]:
    _need(isinstance(values, list) and len(values) <= 24, "holdout.by_hour is not a list of at most 24")
    out = []
    for i, row in enumerate(values):
        where = f"holdout.by_hour[{i}]"
        _need(isinstance(row, dict) and set(row) == {"hour", "n", "mean", "mae"}, f"{where} is malformed")
        out.append({
            "hour": _count(row["hour"], f"{where}.hour", 23), "n": _count(row["n"], f"{where}.n"),
            "mean": _number(row["mean"], f"{where}.mean"), "mae": _number(row["mae"], f"{where}.mae"),
        })  # fmt: skip
    return out


def _fold(row: Any, i: int) -> dict[str, Any]:
    where = f"holdout.folds[{i}]"
    keys = {"fold", "start", "end", "train_start", "train_end", "n_train", "n_test", "metrics"}
    _need(isinstance(row, dict) and set(row) == keys, f"{where} is malformed")
    metrics = row["metrics"]
    _need(isinstance(metrics, dict) and len(metrics) <= MAX_FOLD_METRICS, f"{where}.metrics is malformed")
    for k in metrics:
        _need(isinstance(k, str) and 0 < len(k) <= 250, f"{where}.metrics has a bad key")
    return {
        "fold": _count(row["fold"], f"{where}.fold", MAX_FOLDS),
        **{k: _time(row[k], f"{where}.{k}") for k in ("start", "end", "train_start", "train_end")},
        "n_train": _count(row["n_train"], f"{where}.n_train"),
        "n_test": _count(row["n_test"], f"{where}.n_test"),
        "metrics": {k: _number(v, f"{where}.metrics.{k}") for k, v in metrics.items()},
    }


def none_message(ref: str) -> str:
    """What to say about a version registered without a holdout series.

    >>> none_message("pv:1")[:40]
    'no holdout series for pv:1: it was regis'
    """
    return (
        f"{NONE_PREFIX} for {ref}: it was trained before versions stored one (schema 0008) or "
        "registered without training (Registry.register); retrain it (`maestrale train SPEC`) to get one"
    )


def check_holdout(doc: Any) -> dict[str, Any]:
    """A clean copy of a holdout document, or `ValueError` naming the first bad field.

    Checks the schema, every type, the lengths (at most `MAX_POINTS` points, `MAX_FOLDS` folds)
    and that every number is finite.
    """
    try:
        _need(isinstance(doc, dict), "holdout is not a JSON object")
        extra, missing = sorted(map(str, set(doc) - _KEYS))[:5], sorted(_KEYS - set(doc))
        _need(not extra and not missing, f"holdout: unexpected keys {extra}, missing keys {missing}")
        _need(doc["schema"] == SCHEMA, f"holdout.schema is not {SCHEMA!r}")
        _need(doc["sampling"] in ("all", "even"), "holdout.sampling is not 'all' or 'even'")
        times = doc["times"]
        _need(isinstance(times, list) and len(times) <= MAX_POINTS, f"holdout.times: at most {MAX_POINTS}")
        n = len(times)
        folds = doc["folds"]
        _need(isinstance(folds, list) and len(folds) <= MAX_FOLDS, f"holdout.folds: at most {MAX_FOLDS}")
        return {
            "schema": SCHEMA,
            "rows": _count(doc["rows"], "holdout.rows"),
            "sampling": doc["sampling"],
            "times": [_time(v, f"holdout.times[{i}]") for i, v in enumerate(times)],
            "actual": _series(doc, "actual", n),
            "forecast": _series(doc, "forecast", n),
            "entity": _entities(doc["entity"], n),
            "by_hour": _by_hour(doc["by_hour"]),
            "folds": [_fold(row, i) for i, row in enumerate(folds)],
        }
    except _Bad as exc:
        raise ValueError(str(exc)) from None
