"""The monitor closes the loop on a real store and registry: breach → retraining → challenger → decision.

The monitor asks for a retraining with `train.requested` in its outbox and learns the outcome from
`train.completed` (recorded by `retraining.record_outcome`, as the monitor service's consumer does):
it writes and reads no table of the training service.

A synthetic plant whose power is exactly 0.004 × irradiance lets every figure be checked by hand:
a 20% capacity loss makes the forecast's energy shortfall exactly 0.25 of the actual, 0.2 of the
forecast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import select

from maestrale import Registry
from maestrale.monitoring import retraining
from maestrale.monitoring.monitor import Monitor
from maestrale.monitoring.policy import load_policy
from maestrale.monitoring.store import MonitorStore
from maestrale.platform.tables import outbox

K = 0.004  # kW per W/m2
START = datetime(2012, 6, 1, tzinfo=UTC)
POLICY = """
name: test
conditions:
  - {name: shortfall, metric: rbias, window: 3D, abs_above: 0.12, min_samples: 48}
  - {name: drift, drift: psi, window: 3D, above: 0.25, min_share: 0.5, min_samples: 48, actions: [breach]}
cooldown: 7D
retrain: {window: keep, holdout: 7D, sample_weight: {half_life: 7D}, refit: true}
promotion: {metric: nmae, margin: 0.05, min_samples: 48, max_wait: 10D, guardrails: {rmse: 0.0}}
"""


def irradiance(day: int) -> pd.Series:
    """One day of hourly irradiance: a clear-sky bell with a day-dependent cloud factor."""
    idx = pd.date_range(START + timedelta(days=day), periods=24, freq="h")
    hours = np.arange(24)
    bell = np.clip(np.sin((hours - 5) / 14 * np.pi), 0, None) * 900
    cloud = 0.6 + 0.4 * ((day * 7919) % 10) / 10  # deterministic day-to-day variety
    return pd.Series(bell * cloud, index=idx, name="ghi")


def frame(days: range) -> pd.DataFrame:
    return pd.concat([irradiance(d) for d in days]).to_frame()


def register(reg: Registry, factor: float, window_end: datetime) -> int:
    X = frame(range(0, 10))
    model = LinearRegression().fit(X, K * factor * X["ghi"])
    spec = {
        "name": "pv-synth", "data": {"uri": "/nonexistent.parquet"}, "target": "power_kw",
        "features": ["ghi"],
        "estimator": "sklearn.linear_model:LinearRegression",
        "train_window": {"start": "2012-05-01", "end": window_end.date().isoformat()},
        "split": {"holdout": {"test_start": "2012-05-25"}}, "capacity": 3.6,
    }  # fmt: skip
    mv = reg.register(
        "pv-synth", model, metrics={"nmae": 0.01, "rmse": 0.05}, input_example=X.head(), spec=spec,
        profile=__import__("maestrale.stats.profile", fromlist=["x"]).reference_profile(X, model.predict(X)),
    )  # fmt: skip
    return mv.version


def log_day(
    store: MonitorStore, version: int, model: LinearRegression, day: int, loss: float, shift: float = 1
):
    X = irradiance(day).to_frame() * shift
    pred = model.predict(X)
    issued = (X.index[0] - timedelta(hours=12)).isoformat()
    records = [
        {"record_id": f"{t.isoformat()}", "entity": "p1", "issued_at": issued, "target_time": t.isoformat(),
         "features": {"ghi": float(g)}, "prediction": float(p)}
        for t, g, p in zip(X.index, X["ghi"], pred, strict=True)
    ]  # fmt: skip
    assert store.log_predictions("pv-synth", version, records).stored == 24
    actual = K * (1 - loss) * X["ghi"]
    store.log_actuals(
        [{"entity": "p1", "target_time": t.isoformat(), "value": float(v)} for t, v in actual.items()]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, tmp_path):
    # a database per test: the tests read whole tables (the outbox, every breach)
    url = f"sqlite:///{tmp_path}/m.db" if request.param == "sqlite" else request.getfixturevalue("fresh_pg")
    reg = Registry(database_url=url, storage_url=f"file://{tmp_path}/artifacts")
    store = MonitorStore(url)
    return reg, store, Monitor(store, reg, True, [load_policy(POLICY)])


def completed(store: MonitorStore, request_id: str, version: int) -> None:
    """What the monitor service does on `train.completed` (test_monitor_training_bus: over the bus)."""
    assert retraining.record_outcome(store._writer, request_id, "completed", version=version) == "pv-synth"


def outbox_types(reg: Registry) -> list[str]:
    engine = reg._meta.engine
    with engine.connect() as conn:
        return list(conn.execute(select(outbox.c.type).order_by(outbox.c.id)).scalars())


def requested_events(reg: Registry) -> list[dict]:
    """The `train.requested` events the monitor wrote: its only channel to the training service."""
    q = select(outbox.c.data).where(outbox.c.type == "maestrale.train.requested").order_by(outbox.c.id)
    with reg._meta.engine.connect() as conn:
        return list(conn.execute(q).scalars())


def test_fault_is_detected_retrained_and_the_better_challenger_promoted(world):
    reg, store, mon = world
    name = "pv-synth"
    v1 = register(reg, 1.0, START)
    reg.set_alias(name, "champion", v1)
    champion = reg.load(f"{name}:{v1}")
    fault_day, detected, request_id = 5, None, None
    for day in range(0, 12):
        log_day(store, v1, champion, day, loss=0.2 if day >= fault_day else 0.0)
        for result in mon.tick():
            if result.breaches and detected is None:
                detected, request_id = day, result.retrain_request
    # rbias over 3D exceeds 0.12 once 2 of the 3 days are faulty: 0.2 x their share of the energy
    assert detected == fault_day + 1
    assert request_id is not None
    energy = {d: irradiance(d).sum() for d in range(fault_day - 1, fault_day + 2)}
    expected = 0.2 * (energy[fault_day] + energy[fault_day + 1]) / sum(energy.values())
    breach = store.breaches(name)[0]
    assert breach["condition"] == "shortfall" and breach["value"] == pytest.approx(expected, rel=1e-6)
    assert breach["actions"]["retrain"] == request_id
    # later breaches do not ask again while the request is open, and say why
    later = [b for b in store.breaches(name)[1:] if b["condition"] == "shortfall"]
    assert later and all("not requested" in b["actions"]["retrain"] for b in later)
    rec = retraining.get(store.engine, request_id)
    assert rec is not None and rec.status == "requested" and rec.parent_version == v1
    assert rec.reason.startswith("monitor: shortfall")
    [event] = requested_events(reg)  # one request, in the outbox with the monitor's state change
    assert (event["request_id"], event["requested_by"], event["parent_version"]) == (
        request_id,
        "monitor",
        v1,
    )
    spec = event["spec"]
    as_of = datetime.fromisoformat(spec["train_window"]["end"]) - timedelta(seconds=1)
    assert as_of == START + timedelta(days=fault_day + 1, hours=23)  # the latest actual at detection
    assert spec["split"]["refit"] is True and spec["sample_weight"] == {"half_life": "7D"}
    assert "maestrale.monitor.breach" in outbox_types(reg)

    # the training service would now train; here the retrained model knows the new capacity
    v2 = register(reg, 0.8, as_of)
    completed(store, request_id, v2)
    # the challenger at once, without waiting for new data: judged on the pairs after its training
    # data (days 7-11, logged while it trained), 120 of them already
    assert mon.tick() == []
    assert reg.get_model(name).aliases["challenger"] == v2
    row = store.overview(name)[0]
    assert row["challenger_since"] == as_of and row["retrain_status"] == "completed"
    assert (row["challenger_pairs"], row["challenger_min_samples"]) == (5 * 24, 48)
    promoted_day = None
    for day in range(12, 20):
        log_day(store, v1, champion, day, loss=0.2)
        for result in mon.tick():
            if result.promoted:
                promoted_day = day
        if promoted_day:
            break
    # decided at the first evaluation after training: the pairs logged meanwhile are enough
    assert promoted_day == 12
    assert reg.get_version(f"{name}@champion").version == v2
    assert "challenger" not in reg.get_model(name).aliases
    decision = store.decisions(name)[0]
    assert decision["outcome"] == "promoted" and decision["challenger_version"] == v2
    assert decision["n"] >= 48
    assert decision["challenger_metrics"]["nmae"] == pytest.approx(0.0, abs=1e-9)  # exact model
    assert decision["champion_metrics"]["rbias"] == pytest.approx(0.2, rel=1e-6)
    assert "maestrale.model.promoted" in outbox_types(reg)


def test_a_worse_challenger_is_rejected_and_the_champion_stays(world):
    reg, store, mon = world
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    champion = reg.load(f"pv-synth:{v1}")
    request_id = None
    for day in range(0, 10):
        log_day(store, v1, champion, day, loss=0.2 if day >= 4 else 0.0)
        for result in mon.tick():
            request_id = request_id or result.retrain_request
    assert request_id
    v2 = register(reg, 1.3, START + timedelta(days=9))  # a retraining gone wrong: over-forecasts more
    completed(store, request_id, v2)
    for day in range(10, 16):
        log_day(store, v1, champion, day, loss=0.2)
        mon.tick()
    decision = store.decisions("pv-synth")[0]
    assert decision["outcome"] == "rejected" and "nmae" in decision["reason"]
    assert reg.get_version("pv-synth@champion").version == v1
    assert decision["challenger_metrics"]["nmae"] > decision["champion_metrics"]["nmae"]


def test_drift_alone_alerts_without_retraining(world):
    reg, store, mon = world
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    champion = reg.load(f"pv-synth:{v1}")
    for day in range(0, 4):
        # the inputs triple (a unit error upstream: kW/m2 sent as W/m2 x 3) and the plant follows them
        X = irradiance(day).to_frame() * 3
        pred = champion.predict(X)
        store.log_predictions("pv-synth", v1, [
            {"record_id": t.isoformat(), "entity": "p1", "issued_at": t.isoformat(),
             "target_time": t.isoformat(), "features": {"ghi": float(g)}, "prediction": float(p)}
            for t, g, p in zip(X.index, X["ghi"], pred, strict=True)
        ])  # fmt: skip
        store.log_actuals(
            [
                {"entity": "p1", "target_time": t.isoformat(), "value": float(p)}
                for t, p in zip(X.index, pred, strict=True)
            ]
        )
        results = mon.tick()
    breaches = store.breaches("pv-synth")
    assert breaches and {b["condition"] for b in breaches} == {"drift"}
    assert breaches[-1]["metric"] == "psi:ghi" and breaches[-1]["value"] > 0.25
    assert all(not r.retrain_request for r in results)
    assert requested_events(reg) == [] and retraining.history(store.engine, "pv-synth") == []


def test_performance_joins_late_and_corrected_actuals(world):
    from maestrale.monitoring.performance import performance
    from maestrale.stats.metrics import energy_metrics

    _, store, _ = world
    X = irradiance(0).to_frame()
    pred = K * X["ghi"].to_numpy() * 1.1
    store.log_predictions("pv-synth", 1, [
        {"record_id": str(i), "entity": "p1", "issued_at": START.isoformat(), "target_time": t.isoformat(),
         "features": {"ghi": float(g)}, "prediction": float(p)}
        for i, (t, g, p) in enumerate(zip(X.index, X["ghi"], pred, strict=True))
    ])  # fmt: skip
    end = X.index[-1].to_pydatetime()
    assert performance(store, "pv-synth", end, "1D").n == 0  # no actual yet
    truth = K * X["ghi"].to_numpy()
    store.log_actuals([{"entity": "p1", "target_time": t.isoformat(), "value": 0.0} for t in X.index])
    store.log_actuals(
        [
            {"entity": "p1", "target_time": t.isoformat(), "value": float(v)}
            for t, v in zip(X.index, truth, strict=True)
        ]
    )
    rep = performance(
        store, "pv-synth", end, "1D", capacity=3.6, training={"nmae": 0.01}, persistence_lag=None
    )
    expected = energy_metrics(truth, pred, capacity=3.6)
    assert rep.n == 24
    for k in ("mae", "rmse", "bias", "nmae"):
        assert rep.overall[k] == pytest.approx(expected[k], rel=1e-9)
    assert rep.overall["rbias"] == pytest.approx(0.1 / 1.1, rel=1e-9)
    assert rep.ratios["nmae"] == pytest.approx(expected["nmae"] / 0.01, rel=1e-6)
    assert set(rep.by_horizon) <= {"0-6h", "6-24h", "24-48h", "2-7d", ">7d"}


def test_an_unregistered_model_is_retried_once_per_period_not_every_tick(world, caplog):
    _, store, mon = world
    X = irradiance(0).to_frame()
    store.log_predictions("ghost", 1, [
        {"record_id": str(i), "entity": "g", "issued_at": START.isoformat(), "target_time": t.isoformat(),
         "features": {"ghi": float(g)}, "prediction": 1.0}
        for i, (t, g) in enumerate(zip(X.index, X["ghi"], strict=True))
    ])  # fmt: skip
    store.log_actuals([{"entity": "g", "target_time": t.isoformat(), "value": 1.0} for t in X.index])
    assert mon.tick() == []
    assert "evaluating ghost" in caplog.text and "next try after the schedule period" in caplog.text
    caplog.clear()
    assert mon.tick() == [] and "ghost" not in caplog.text  # not due again until a day of data passes
