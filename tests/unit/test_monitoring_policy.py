"""Policies, record validation, moved retraining specs and champion/challenger decisions (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from maestrale.monitoring.ingest import validate_actuals, validate_predictions
from maestrale.monitoring.performance import horizon_bucket, window_label, window_metrics
from maestrale.monitoring.policy import PolicyError, Promotion, Retrain, default_policy, load_policy
from maestrale.monitoring.promotion import compare
from maestrale.monitoring.retrain import moved_spec
from maestrale.vocabulary import parse_window


def test_default_policy_is_valid_and_retrains_only_on_performance():
    p = default_policy()
    retrainers = {c.name for c in p.conditions if "retrain" in p.actions_of(c)}
    assert retrainers == {"shortfall", "skill"}
    assert all(c.metric for c in p.conditions if c.name in retrainers)
    assert p.retrain.refit and p.retrain.sample_weight is not None


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("conditions: [{name: a, metric: nmae, above: 0.1, below: 0.2}]", "exactly one threshold"),
        ("conditions: [{name: a, metric: nmea, above: 0.1}]", "unknown metric 'nmea'"),
        ("conditions: [{name: a, metric: nmae, window: 7 parsecs, above: 0.1}]", "not a window"),
        ("conditions: [{name: a, drift: psi, below: 0.1}]", "use `above:`"),
        ("conditions: [{name: a, metric: nmae, above: 1}, {name: a, metric: rmse, above: 1}]", "unique"),
        ("conditions: [{name: a, metric: nmae, above: 1}]\npromotion: {metric: skill}", "error metric"),
        ("conditions: []", "conditions"),
    ],
)
def test_policy_errors_name_the_field_and_the_fix(yaml_text, expected):
    with pytest.raises(PolicyError) as err:
        load_policy("name: p\n" + yaml_text)
    assert expected in err.value.message


def test_condition_thresholds():
    p = load_policy("""
name: p
conditions:
  - {name: ratio, metric: nmae, ratio_to_training: 1.3}
  - {name: bias, metric: rbias, abs_above: 0.12}
  - {name: skill, metric: skill, below: 0.2}
""")
    ratio, bias, skill = p.conditions
    assert ratio.fires(0.04, training=0.03) is True and ratio.fires(0.038, training=0.03) is False
    assert ratio.fires(0.04, training=None) is None  # no training value: cannot judge
    assert bias.fires(-0.2) is True and bias.fires(0.1) is False
    assert skill.fires(0.1) is True and skill.fires(0.5) is False
    assert p.applies_to("anything") and not load_policy(
        "name: q\nmodels: ['pv-*']\nconditions: [{name: a, metric: mae, above: 1}]"
    ).applies_to("wind-1")


def test_ingest_rejects_bad_records_with_reasons_and_keeps_the_rest():
    good = {"record_id": "ok", "entity": "p", "issued_at": "2012-06-01T12:00Z",
            "target_time": "2012-06-02T10:00Z", "prediction": [1.0, 2.0, 3.0],
            "features": {"ghi": float("nan")}}  # fmt: skip
    bad = [
        {**good, "record_id": "naive", "target_time": "2012-06-02T10:00"},
        {**good, "record_id": "nan", "prediction": float("nan")},
        {**good, "record_id": "horizon", "horizon": "PT1H"},
        {**good},  # same id again
        {"entity": "p"},
    ]
    rows, rejected = validate_predictions([good, *bad])
    assert [r["record_id"] for r in rows] == ["ok"]
    assert rows[0]["prediction"] == 2.0 and rows[0]["output"] == [1.0, 2.0, 3.0]  # middle quantile
    assert rows[0]["features"] == {"ghi": None} and rows[0]["horizon_s"] == 22 * 3600
    reasons = {r.record_id: r.reason for r in rejected}
    assert "time zone" in reasons["naive"]
    assert "finite" in reasons["nan"]
    assert "disagrees" in reasons["horizon"]
    assert "repeats" in reasons["ok"]
    assert [r.index for r in rejected] == [1, 2, 3, 4, 5]
    actual_rows, actual_bad = validate_actuals(
        [{"entity": "p", "target_time": "2012-06-02T10:00Z", "value": 1.0},
         {"entity": "p", "target_time": "2012-06-02T10:00Z", "value": 2.0},
         {"entity": "p", "target_time": "2012-06-02T11:00Z", "value": float("inf")}]
    )  # fmt: skip
    assert [r["value"] for r in actual_rows] == [2.0]  # the later duplicate wins
    assert actual_bad[0].index == 2


def test_windows_and_horizon_buckets():
    assert parse_window("7D") == timedelta(days=7) and parse_window("90min") == timedelta(minutes=90)
    assert window_label(timedelta(hours=36)) == "36h"
    with pytest.raises(ValueError, match="not a window"):
        parse_window("a week")
    assert horizon_bucket(np.array([1, 6, 7, 30, 200])).tolist() == ["0-6h", "0-6h", "6-24h", "24-48h", ">7d"]


def test_window_metrics_rbias_and_skill():
    actual = np.array([0.0, 1.0, 2.0, 3.0])
    m = window_metrics(actual, actual / 0.8, capacity=4.0, reference=np.array([0.0, 0.0, 0.0, 0.0]))
    assert m["rbias"] == pytest.approx(0.2)  # a 20% shortfall of the forecast energy
    assert m["nbias"] == pytest.approx(m["bias"] / 4.0)
    assert m["skill"] > 0 and m["n"] == 4 and m["n_skill"] == 4


def test_moved_spec_keeps_the_window_length_and_sets_the_holdout():
    spec = {"name": "m", "train_window": {"start": "2011-04-15", "end": "2012-03-31"}, "params": {"a": 1}}
    as_of = datetime(2012, 7, 3, 5, tzinfo=UTC)
    new = moved_spec(spec, as_of, Retrain(holdout="14D", sample_weight={"half_life": "7D"}))
    end = datetime.fromisoformat(new["train_window"]["end"])
    start = datetime.fromisoformat(new["train_window"]["start"])
    assert end == as_of + timedelta(seconds=1)
    assert end - start == timedelta(days=352)  # 2011-04-15 00:00 to 2012-04-01 00:00
    assert new["split"] == {"holdout": {"test_start": (end - timedelta(days=14)).isoformat()}, "refit": True}
    assert new["sample_weight"] == {"half_life": "7D"} and new["params"] == {"a": 1}
    assert spec["train_window"]["end"] == "2012-03-31"  # the champion's spec is not modified
    fixed = moved_spec(spec, as_of, Retrain(window="90D", refit=False))
    assert datetime.fromisoformat(fixed["train_window"]["start"]) == end - timedelta(days=90)
    assert "refit" not in fixed["split"]


def _frame(actual: np.ndarray, champion: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"actual": actual, "prediction": champion})


def test_compare_promotes_only_a_clearly_better_challenger():
    rng = np.random.default_rng(0)
    actual = rng.uniform(0, 3, 100)
    champion = actual * 1.25
    rule = Promotion(min_samples=72, margin=0.05, guardrails={"rmse": 0.0})
    assert compare(_frame(actual, champion), actual * 1.02, rule, capacity=3.4).outcome == "promoted"
    close = compare(_frame(actual, champion), actual * 1.24, rule, capacity=3.4)
    assert close.outcome == "rejected" and "needs -5%" in close.reason
    few = compare(_frame(actual[:50], champion[:50]), actual[:50], rule, capacity=3.4)
    assert few.outcome is None and "50 of 72" in few.reason
    off = compare(_frame(actual, champion), actual, Promotion(auto=False), capacity=3.4)
    assert off.outcome == "rejected" and "auto-promotion is off" in off.reason
    # better on nMAE but a much larger bias: the guardrail holds it back
    guarded = Promotion(guardrails={"nbias": 0.0})
    biased = np.where(actual > 1, actual * 1.2, actual)
    skewed = compare(
        _frame(actual, actual + 0.5 * np.sign(rng.normal(size=100))), biased, guarded, capacity=3.4
    )
    assert skewed.outcome == "rejected" and "nbias worse" in skewed.reason
