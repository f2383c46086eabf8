"""The spec of a retraining: the champion's recorded spec, its data window moved to the monitor's clock.

>>> spec = {"name": "pv", "train_window": {"start": "2011-04-15", "end": "2012-03-31"},
...         "split": {"holdout": {"test_start": "2012-03-01"}}}
>>> from maestrale.monitoring.policy import Retrain
>>> new = moved_spec(spec, datetime(2012, 7, 3, 6, tzinfo=UTC), Retrain(holdout="14D"))
>>> new["train_window"]
{'start': '2011-07-17T06:00:01+00:00', 'end': '2012-07-03T06:00:01+00:00'}
>>> new["split"]["holdout"]
{'test_start': '2012-06-19T06:00:01+00:00'}
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

from maestrale.monitoring.policy import Retrain
from maestrale.vocabulary import parse_window


def _moment(value: Any, end: bool) -> datetime | None:
    """A recorded window bound as an aware datetime (a date as `end` means up to the next midnight)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.replace("Z", "+00:00")
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    day = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return day + timedelta(days=1) if end else day


def moved_spec(spec: dict[str, Any], as_of: datetime, retrain: Retrain) -> dict[str, Any]:
    """A copy of `spec` whose train window ends just after `as_of` (the latest actual, included).

    The window keeps its length (`retrain.window: keep`) or takes the policy's; the holdout becomes
    its last `retrain.holdout`; recency weighting and refit come from the policy. Nothing else changes:
    same data source, features, estimator and parameters.
    """
    new = copy.deepcopy(spec)
    end = as_of + timedelta(seconds=1)  # window ends are exclusive: keep the as_of row itself
    old = new.get("train_window") or {}
    start_old, end_old = _moment(old.get("start"), False), _moment(old.get("end"), True)
    if retrain.window != "keep":
        start: datetime | None = end - parse_window(retrain.window)
    elif start_old is not None and end_old is not None:
        start = end - (end_old - start_old)
    else:
        start = start_old
    window: dict[str, Any] = {"end": end.isoformat()}
    if start is not None:
        window = {"start": start.isoformat(), **window}
    new["train_window"] = window
    split = new.setdefault("split", {})
    split["holdout"] = {"test_start": (end - parse_window(retrain.holdout)).isoformat()}
    if retrain.refit:
        split["refit"] = True
    if retrain.sample_weight is not None:
        new["sample_weight"] = {"half_life": retrain.sample_weight.half_life}
    return new
