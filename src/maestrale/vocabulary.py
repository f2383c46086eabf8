"""The words training specs, monitoring policies and the API share: durations, metric names, recency
weighting and the persistence lag. One definition of each, so a spec and a policy mean the same thing.

>>> parse_duration("36h")
datetime.timedelta(days=1, seconds=43200)
>>> parse_window("a week")
Traceback (most recent call last):
ValueError: 'a week' is not a window: write a number and a unit, e.g. "7D", "24h", "90min"
>>> persistence_lag({"baselines": {"persistence": {"lag": "1h"}}})
datetime.timedelta(seconds=3600)
>>> SampleWeight.model_validate({"half_life": "7D"}).half_life
'7D'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from maestrale.limits import MAX_DURATION, MAX_DURATION_LABEL

# -- durations ------------------------------------------------------------------------------------
DURATION_UNITS = {"min": 60, "s": 1, "h": 3600, "D": 86400, "d": 86400, "W": 604800, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(min|s|h|D|d|W|w)\s*$")


def parse_duration(value: str | timedelta, what: str = "duration") -> timedelta:
    """ "7D", "36h", "90min", "2W", "30s" → timedelta, at most `MAX_DURATION` (`what` names it in errors).

    The one parser of durations: spec fields (`Duration`), policy windows, API query windows.

    >>> parse_duration("99999999999D", "window")
    Traceback (most recent call last):
    ValueError: '99999999999D' is longer than the maximum window, 3650D (10 years): use a shorter one
    """
    if isinstance(value, timedelta):
        return value
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f'{value!r} is not a {what}: write a number and a unit, e.g. "7D", "24h", "90min"')
    seconds = float(m[1]) * DURATION_UNITS[m[2]]
    # bounded: a window of 10**11 days overflows timedelta and every date computed from it
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"{value.strip()!r} is longer than the maximum {what}, {MAX_DURATION_LABEL}: use a shorter one"
        )
    return timedelta(seconds=seconds)


def parse_window(value: str | timedelta) -> timedelta:
    """`parse_duration` of a monitoring window (errors say "window"): `parse_window("7D")` → 7 days."""
    return parse_duration(value, "window")


def check_duration(value: Any) -> str:
    """The text of a valid duration, stripped (`" 7D "` → `"7D"`), else ValueError with the fix."""
    parse_duration(value)
    return str(value).strip()


#: A duration kept as its text ("24h", "30D", "15min", "1W"), checked by `parse_duration`.
Duration = Annotated[str, BeforeValidator(check_duration)]

# -- metrics --------------------------------------------------------------------------------------
#: Every metric a window of forecast/actual pairs is scored with, in the order tables show them:
#: errors, normalised by capacity (n…), relative bias (rbias), skill against persistence.
METRICS: tuple[str, ...] = ("mae", "rmse", "bias", "nbias", "rbias", "mape", "nmae", "nrmse", "skill")
#: The ones a training spec can list (`metrics:`); nbias and rbias are computed on production pairs.
TrainingMetric = Literal["mae", "rmse", "bias", "mape", "nmae", "nrmse", "skill"]
TRAINING_METRICS: tuple[str, ...] = get_args(TrainingMetric)
#: Metrics where lower is better (every one but skill): what promotion and guardrails compare.
ERROR_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m != "skill")
assert set(TRAINING_METRICS) <= set(METRICS)


# -- recency weighting ----------------------------------------------------------------------------
class SampleWeight(BaseModel):
    """Exponential recency weighting of the training rows of every fit (folds, holdout, refit).

    A row `half_life` older than the newest row of its fit counts half, twice as old a quarter:
    `weight = 0.5 ** ((t_last - t) / half_life)`. The estimator must take `fit(..., sample_weight=)`.
    Training specs (`sample_weight:`) and monitoring policies (`retrain.sample_weight`) both use it.
    """

    model_config = ConfigDict(extra="forbid")
    half_life: Duration = Field(description='How long until a row counts half, e.g. "7D", "36h".')

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        # the nested key is easy to forget (`sample_weight: 7D`): say the whole form, not just "not a dict"
        if isinstance(v, SampleWeight):
            return v
        if not isinstance(v, dict):
            raise ValueError(f'{v!r} is not a weighting: write sample_weight: {{half_life: "7D"}}')
        if unknown := sorted(set(v) - {"half_life"}):
            raise ValueError(
                f"unknown field {unknown[0]!r}: sample_weight takes only half_life, "
                'e.g. sample_weight: {half_life: "7D"}'
            )
        if "half_life" not in v:
            raise ValueError('half_life is missing: write sample_weight: {half_life: "7D"}')
        return v

    @field_validator("half_life")
    @classmethod
    def _positive(cls, v: str) -> str:
        # "0D" is a valid duration but would divide by zero: every row but the newest would weigh 0
        if parse_duration(v) <= timedelta(0):
            raise ValueError(f'half_life {v!r} must be longer than zero, e.g. "7D"')
        return v


# -- the persistence baseline ---------------------------------------------------------------------
#: The lag of the persistence forecast when a spec does not give one: the same hour yesterday.
DEFAULT_PERSISTENCE_LAG = "24h"


def persistence_lag(spec: Mapping[str, Any] | None) -> timedelta:
    """The persistence lag of a recorded spec (`baselines.persistence.lag`), 24 h when it has none.

    Skill in production is computed against the same reference the version was trained against.

    >>> persistence_lag(None)
    datetime.timedelta(days=1)
    """
    baselines = (spec or {}).get("baselines") or {}
    persistence = baselines.get("persistence") or {}
    return parse_duration(persistence.get("lag") or DEFAULT_PERSISTENCE_LAG, "persistence lag")
