"""Champion/challenger: score both versions on the same out-of-sample window, promote only if better.

The monitor has every input the champion was called with (the logged features), so the challenger
is scored offline on exactly those rows, without serving it: "shadow" scoring on the rows whose
target time comes after the challenger's training data ended, where it cannot have seen the actuals.

Each row is normalised by its entity's capacity, as in the monitor's evaluation: the policy's
`capacity: {entity: kW}` (`entity_capacity`), else the spec's one `capacity`.

>>> d = compare(champion_frame, challenger_pred, promotion, capacity=3.4)  # doctest: +SKIP
>>> d.outcome, d.reason  # doctest: +SKIP
('promoted', 'nmae 0.0261 vs 0.0386 (-32.4%, needs -5%); rmse within 2%: 0.071 vs 0.098')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.monitoring.performance import row_capacities, window_metrics

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.monitoring.policy import Promotion


@dataclass
class Comparison:
    """The numbers behind a decision; `outcome` is promoted, rejected or None (not enough data yet)."""

    outcome: str | None
    reason: str
    n: int
    champion: dict[str, float]
    challenger: dict[str, float]


def _lower_is_better(metric: str, value: float) -> float:
    return abs(value) if metric in ("bias", "nbias", "rbias") else value


def challenger_inputs(version: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The challenger's inputs for the logged rows of `frame`, in its input schema's order.

    Each input is a logged feature of the same name; an input of datetime dtype (the time of a
    feature pipeline, `maestrale.features`) is the row's target time, which every record carries. So a
    raw-input challenger is scored on the logs of a champion that took the same raw inputs, or took
    derived features copied from them (an old version logged ghi, temp_air… among its features).

    >>> challenger_inputs(mv, store.scored(..., features=True)).columns.tolist()  # doctest: +SKIP
    ['time', 'ghi', 'temp_air', 'ghi_clear']
    """
    import pandas as pd

    columns = {}
    times = [c for c in version.input_schema or [] if str(c.dtype).startswith("datetime64")]
    for col in times:
        tz = getattr(pd.api.types.pandas_dtype(col.dtype), "tz", None)
        target = pd.DatetimeIndex(frame["target_time"])
        columns[col.name] = (target.tz_convert(tz) if tz is not None else target.tz_localize(None)).to_numpy()
    names = feature_columns(version, frame, provided=set(columns))
    data = {n: columns[n] if n in columns else frame[n].to_numpy() for n in names}
    return pd.DataFrame(data, columns=names)


def feature_columns(version: Any, frame: pd.DataFrame, provided: set[str] | None = None) -> list[str]:
    """The challenger's input columns in its training order (from the registered input schema).

    `provided` are inputs the caller builds itself (the time of a feature pipeline).
    """
    names = [c.name for c in version.input_schema or []]
    if not names:
        raise ValueError(
            f"{version.name}:{version.version} has no input schema: register it with an input_example "
            "so the monitor can score it on logged features"
        )
    missing = [n for n in names if n not in frame.columns and n not in (provided or set())]
    if missing:
        raise ValueError(
            f"logged features lack {missing} that {version.name}:{version.version} needs: log every model "
            "input in the prediction records' `features`"
        )
    return names


def compare(
    frame: pd.DataFrame,
    challenger_prediction: np.ndarray,
    promotion: Promotion,
    *,
    capacity: float | None,
    entity_capacity: Mapping[str, float] | None = None,
) -> Comparison:
    """Decide on the rows of `frame` (champion prediction + actual) and the challenger's predictions.

    With `entity_capacity` (the policy's `capacity:`) each row is normalised by its entity's capacity,
    `capacity` being the one of entities it leaves out (`performance.row_capacities`).
    """
    actual = frame["actual"].to_numpy(dtype="float64")
    rows: float | np.ndarray | None = capacity
    if entity_capacity:
        rows = row_capacities(frame["entity"].to_numpy(), capacity, entity_capacity)
    champ = window_metrics(
        actual, frame["prediction"].to_numpy(dtype="float64"), capacity=rows, reference=None
    )
    chall = window_metrics(
        actual, np.asarray(challenger_prediction, dtype="float64"), capacity=rows, reference=None
    )
    n = int(champ.get("n", 0))
    metric = promotion.metric
    if n < promotion.min_samples:
        return Comparison(None, f"{n} of {promotion.min_samples} out-of-sample pairs so far", n, champ, chall)
    if metric not in champ or metric not in chall:
        return Comparison(
            "rejected", f"{metric} is undefined on this window (is capacity set?)", n, champ, chall
        )
    a, b = champ[metric], chall[metric]
    change = (b - a) / a if a else float("-inf") if b < a else 0.0
    better = b <= a * (1 - promotion.margin)
    parts = [f"{metric} {b:.4g} vs {a:.4g} ({change:+.1%}, needs -{promotion.margin:.0%})"]
    guards_ok = True
    for g, tol in promotion.guardrails.items():
        if g not in champ or g not in chall:
            continue
        ga, gb = _lower_is_better(g, champ[g]), _lower_is_better(g, chall[g])
        ok = gb <= ga * (1 + tol) + 1e-12
        guards_ok &= ok
        parts.append(f"{g} {'within' if ok else 'worse than'} {tol:.0%}: {gb:.4g} vs {ga:.4g}")
    reason = "; ".join(parts)
    if better and guards_ok:
        if not promotion.auto:
            return Comparison("rejected", f"better, but auto-promotion is off: {reason}", n, champ, chall)
        return Comparison("promoted", reason, n, champ, chall)
    return Comparison("rejected", reason, n, champ, chall)
