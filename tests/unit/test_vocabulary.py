"""One vocabulary (maestrale.vocabulary): specs, policies and the API read durations, metrics, recency
weighting and the persistence lag the same way."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from maestrale.monitoring.performance import window_metrics
from maestrale.monitoring.policy import PolicyError, load_policy
from maestrale.training.spec import TrainingSpec
from maestrale.vocabulary import (
    METRICS,
    TRAINING_METRICS,
    SampleWeight,
    parse_duration,
    persistence_lag,
)

SPEC = {
    "name": "pv",
    "data": {"dataset": "nrel_system50"},
    "target": "power_kw",
    "features": ["ghi"],
    "estimator": "ridge",
}


POLICY = "name: p\nconditions: [{name: a, metric: nmae, window: 7D, above: 0.1}]\n"


def spec_duration(text: str) -> str:
    return TrainingSpec.model_validate(
        {**SPEC, "baselines": {"persistence": {"lag": text}}}
    ).baselines.persistence.lag  # type: ignore[union-attr]


def policy_window(text: str) -> str:
    return (
        load_policy(f"name: p\nconditions: [{{name: a, metric: nmae, window: '{text}', above: 0.1}}]\n")
        .conditions[0]
        .window
    )


@pytest.mark.parametrize("text", ["7D", " 36h ", "90min", "2W", "1.5h", "30s", "3650D"])
def test_a_spec_and_a_policy_accept_the_same_durations(text: str):
    assert spec_duration(text) == policy_window(text) == text.strip()
    assert parse_duration(text) > timedelta(0)


@pytest.mark.parametrize("text", ["a week", "7", "7 parsecs", "3651D", "-1D", ""])
def test_a_spec_and_a_policy_refuse_the_same_durations(text: str):
    with pytest.raises(ValueError):
        parse_duration(text)
    with pytest.raises(ValueError):
        spec_duration(text)
    with pytest.raises(PolicyError):
        policy_window(text)


def test_a_zero_half_life_is_refused_by_specs_and_policies_alike():
    with pytest.raises(ValueError, match="must be longer than zero"):
        SampleWeight.model_validate({"half_life": "0D"})
    with pytest.raises(ValueError, match="must be longer than zero"):
        TrainingSpec.model_validate({**SPEC, "sample_weight": {"half_life": "0h"}})
    # a policy's retraining weighting is the same model: before, "0D" passed and every old row weighed 0
    with pytest.raises(PolicyError, match="must be longer than zero"):
        load_policy(POLICY + "retrain: {sample_weight: {half_life: 0D}}\n")
    policy = load_policy(POLICY + "retrain: {sample_weight: {half_life: 3D}}\n")
    assert policy.retrain.sample_weight == SampleWeight(half_life="3D")


def test_every_metric_computed_on_pairs_is_in_the_one_list():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    got = window_metrics(y, y + 0.5, capacity=5.0, reference=y[::-1].copy())
    assert {k for k in got if not k.startswith("n_") and k != "n"} <= set(METRICS)
    assert set(TRAINING_METRICS) <= set(METRICS)
    # what a training spec may ask for is exactly the literal of its `metrics` field
    with pytest.raises(ValueError):
        TrainingSpec.model_validate({**SPEC, "metrics": ["rbias"]})


def test_the_persistence_lag_of_a_recorded_spec():
    assert persistence_lag(None) == timedelta(hours=24)
    assert persistence_lag({"baselines": {}}) == timedelta(hours=24)
    assert persistence_lag({"baselines": {"persistence": None}}) == timedelta(hours=24)
    assert persistence_lag({"baselines": {"persistence": {"lag": "1h"}}}) == timedelta(hours=1)
