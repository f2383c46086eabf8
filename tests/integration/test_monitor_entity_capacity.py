"""A model serving several plants is judged against each plant's capacity (policy `capacity: {entity: kW}`).

Two plants, 950 kW and 700 kW, each forecast 10% of its capacity too high every hour: nMAE is 0.1 for
each and for the model. With the spec's one capacity (the old behaviour) the small plant's error looks
smaller than it is and the large one's larger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from maestrale import Registry
from maestrale.monitoring.monitor import Monitor
from maestrale.monitoring.performance import score_frame
from maestrale.monitoring.policy import PolicyError, load_policy
from maestrale.monitoring.store import MonitorStore

CAPACITY = {"foggia": 950.0, "torino": 700.0}
START = datetime(2024, 6, 1, tzinfo=UTC)
POLICY = """
name: plants
conditions:
  - {name: accuracy, metric: nmae, window: 1D, above: 0.2, min_samples: 12}
capacity: {foggia: 950, torino: 700}
"""


def frame() -> pd.DataFrame:
    rows = []
    for entity, cap in CAPACITY.items():
        for h in range(24):
            actual = cap * 0.5 * max(0.0, np.sin((h - 5) / 14 * np.pi))
            rows.append(
                {"entity": entity, "actual": actual, "prediction": actual + 0.1 * cap, "horizon_s": 3600}
            )
    return pd.DataFrame(rows)


def test_each_row_is_normalised_by_its_plants_capacity():
    overall, by_entity, by_horizon = score_frame(
        frame(), capacity=800.0, reference=None, entity_capacity=CAPACITY
    )
    assert overall["nmae"] == pytest.approx(0.1) and overall["nbias"] == pytest.approx(0.1)
    assert {e: m["nmae"] for e, m in by_entity.items()} == pytest.approx({"foggia": 0.1, "torino": 0.1})
    assert by_horizon["0-6h"]["nmae"] == pytest.approx(0.1)
    assert overall["mae"] == pytest.approx(0.1 * (950 + 700) / 2)  # MAE stays in kW
    # one capacity for both: the 700 kW plant's 70 kW error reads as 8.75% of "800"
    _, single, _ = score_frame(frame(), capacity=800.0, reference=None)
    assert single["torino"]["nmae"] == pytest.approx(70 / 800)


def test_an_entity_left_out_uses_the_specs_capacity_and_without_one_no_overall_nmae():
    overall, by_entity, _ = score_frame(
        frame(), capacity=700.0, reference=None, entity_capacity={"foggia": 950}
    )
    assert overall["nmae"] == pytest.approx(0.1)
    overall, by_entity, _ = score_frame(
        frame(), capacity=None, reference=None, entity_capacity={"foggia": 950}
    )
    assert "nmae" not in overall  # a figure over some of the plants would pass for the whole model
    assert by_entity["foggia"]["nmae"] == pytest.approx(0.1) and "nmae" not in by_entity["torino"]


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        ("{foggia: 0}", "capacity.foggia: Input should be greater than 0"),
        ("{foggia: .nan}", "capacity.foggia"),
    ],
)
def test_bad_capacities_are_refused_by_name(capacity, message):
    with pytest.raises(PolicyError, match=message):
        load_policy(POLICY.replace("capacity: {foggia: 950, torino: 700}", f"capacity: {capacity}"))


def test_the_monitor_uses_the_policys_capacities(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    registry = Registry(database_url=url, storage_url=f"file://{tmp_path}/artifacts")
    X = pd.DataFrame({"ghi": [1.0, 2.0]})
    model = DummyRegressor().fit(X, [0.0, 0.0])
    registry.register("pv-apulia", model, metrics={"nmae": 0.05}, input_example=X, spec={"capacity": 800.0})
    store = MonitorStore(url)
    data = frame()
    data["target_time"] = [START + timedelta(hours=h) for _ in CAPACITY for h in range(24)]
    store.log_predictions(
        "pv-apulia", 1,
        [{"record_id": f"{r.entity}-{r.target_time.isoformat()}", "entity": r.entity,
          "issued_at": (r.target_time - timedelta(hours=12)).isoformat(),
          "target_time": r.target_time.isoformat(), "features": {"ghi": 1.0}, "prediction": r.prediction}
         for r in data.itertuples()],
    )  # fmt: skip
    store.log_actuals(
        [
            {"entity": r.entity, "target_time": r.target_time.isoformat(), "value": r.actual}
            for r in data.itertuples()
        ]
    )
    (result,) = Monitor(store, registry, None, [load_policy(POLICY)]).tick()
    report = result.performance["1D"]
    assert report.overall["nmae"] == pytest.approx(0.1)
    assert report.by_entity["torino"]["nmae"] == pytest.approx(0.1)
    assert report.ratios["nmae"] == pytest.approx(2.0)
