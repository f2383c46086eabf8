"""Backfill, alert episodes and the month without reference, on a real store and registry (SQLite, PG).

The synthetic plant of `test_monitoring_loop` (power = 0.004 × irradiance): every figure is exact.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import select
from typer.testing import CliRunner

from maestrale.cli.main import app
from maestrale.monitoring.monitor import Monitor
from maestrale.monitoring.policy import load_policy
from maestrale.platform.tables import outbox
from maestrale.stats.profile import reference_profile
from tests.integration import test_monitoring_loop as loop
from tests.integration.test_monitoring_loop import START, frame, irradiance, log_day, register

world = loop.world  # the same fixture: registry, store and monitor on SQLite and PostgreSQL


def breach_events(reg) -> list[dict]:
    with reg._meta.engine.connect() as conn:
        q = select(outbox.c.data).where(outbox.c.type == "maestrale.monitor.breach").order_by(outbox.c.id)
        return list(conn.execute(q).scalars())


def test_backfill_evaluates_every_step_and_groups_the_breaches_in_one_episode(world):
    reg, store, mon = world
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    champion = reg.load(f"pv-synth:{v1}")
    for day in range(0, 16):  # two weeks logged at once (an import), a 20% loss from day 5 to day 8
        log_day(store, v1, champion, day, loss=0.2 if 5 <= day <= 8 else 0.0)
    clock = store.data_time("pv-synth")
    assert clock == START + timedelta(days=15, hours=23)
    results = mon.backfill("pv-synth", START + timedelta(days=1), START + timedelta(days=40))
    # one evaluation per day of the schedule up to the clock, not one point for the whole range
    assert [r.as_of for r in results] == [START + timedelta(days=d) for d in range(1, 16)]
    assert len(store.series("pv-synth", window="3D")) == 15
    fired = [r.as_of for r in results if any(b.condition == "shortfall" for b in r.breaches)]
    assert len(fired) >= 3  # the 3-day bias stays over 0.12 for several days
    episodes = [e for e in store.episodes("pv-synth") if e["condition"] == "shortfall"]
    assert len(episodes) == 1  # ... and they are one alert
    ep = episodes[0]
    assert ep["breaches"] == len(fired) and ep["started_at"] == fired[0] and ep["last_at"] == fired[-1]
    peak = max(store.breaches("pv-synth"), key=lambda b: b["value"] if b["condition"] == "shortfall" else -1)
    assert ep["peak_value"] == pytest.approx(peak["value"]) and ep["peak_at"] == peak["as_of"]
    # clear for a whole 3D window after its last breach: ended where the condition stopped firing
    assert ep["ended_at"] == fired[-1] + timedelta(days=1) and not ep["open"]
    assert all(
        b["episode_id"] == ep["id"] for b in store.breaches("pv-synth") if b["condition"] == "shortfall"
    )
    # one breach event per episode, not one per breached day
    events = [e for e in breach_events(reg) if e["condition"] == "shortfall"]
    assert len(events) == 1 and events[0]["episode"] == ep["id"]
    overview = store.overview("pv-synth")[0]
    assert overview["episodes_total"] == len(store.episodes("pv-synth"))
    assert overview["episodes_open"] == sum(e["open"] for e in store.episodes("pv-synth"))


def test_two_faults_far_apart_are_two_episodes_and_two_alerts(world):
    reg, store, mon = world
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    champion = reg.load(f"pv-synth:{v1}")
    losses = {3: 0.3, 4: 0.3, 12: 0.3, 13: 0.3}  # two faults far apart
    for day in range(0, 18):
        log_day(store, v1, champion, day, loss=losses.get(day, 0.0))
    mon.backfill("pv-synth", START + timedelta(days=1), START + timedelta(days=17))
    episodes = [e for e in store.episodes("pv-synth") if e["condition"] == "shortfall"]
    assert [e["started_at"].day for e in episodes] == [6, 15]  # June 4-5 and 13-14, seen the next day
    assert len([e for e in breach_events(reg) if e["condition"] == "shortfall"]) == 2


def test_a_month_the_version_never_saw_says_so_instead_of_alarming(world):
    reg, store, _ = world
    X = frame(range(0, 10))  # June 2012 only
    model = LinearRegression().fit(X, 0.004 * X["ghi"])
    profile = reference_profile(X, model.predict(X), months=X.index.month)
    spec = {"name": "pv-synth", "capacity": 3.6, "train_window": {"start": "2012-06-01", "end": "2012-06-11"}}
    v1 = reg.register("pv-synth", model, metrics={"nmae": 0.01}, input_example=X.head(), spec=spec,
                      profile=profile).version  # fmt: skip
    reg.set_alias("pv-synth", "champion", v1)
    policy = load_policy("""
name: season
conditions:
  - {name: input-drift, drift: psi, window: 3D, above: 0.25, min_share: 0.5, min_samples: 48,
     actions: [breach]}
""")
    mon = Monitor(store, reg, None, [policy])
    for day in (30, 31, 32, 33):  # July: the inputs triple (a drift June bins would flag at once)
        store.log_predictions("pv-synth", v1, [
            {"record_id": t.isoformat(), "entity": "p1", "issued_at": t.isoformat(),
             "target_time": t.isoformat(), "features": {"ghi": 3 * float(g)}, "prediction": 1.0}
            for t, g in irradiance(day).items()
        ])  # fmt: skip
        store.log_actuals(
            [{"entity": "p1", "target_time": t.isoformat(), "value": 1.0} for t in irradiance(day).index]
        )
    results = mon.backfill("pv-synth", START + timedelta(days=32), START + timedelta(days=33))
    assert results and all(not r.breaches for r in results)
    assert results[-1].drift["3D"]["status"] == "no reference for July"
    assert "trained without July data" in results[-1].drift["3D"]["note"]
    assert store.overview("pv-synth")[0]["drift_status"] == "no reference for July"
    # against the whole training profile instead, the same tripled inputs fire: the check is real
    whole = load_policy(policy.model_dump_json().replace('"reference":"season"', '"reference":"training"'))
    fired = Monitor(store, reg, None, [whole]).evaluate("pv-synth", START + timedelta(days=33, hours=23))
    assert [b.metric for b in fired.breaches] == ["psi:ghi"]


def test_cli_backfill_and_status_on_sqlite(tmp_path, monkeypatch):
    from maestrale import Registry
    from maestrale.monitoring.store import MonitorStore

    url, storage = f"sqlite:///{tmp_path}/m.db", f"file://{tmp_path}/artifacts"
    reg, store = Registry(database_url=url, storage_url=storage), MonitorStore(url)
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    champion = reg.load(f"pv-synth:{v1}")
    for day in range(0, 10):
        log_day(store, v1, champion, day, loss=0.2 if day >= 5 else 0.0)
    env = {"MAESTRALE_DATABASE_URL": url, "MAESTRALE_STORAGE_URL": storage}
    res = CliRunner().invoke(
        app,
        ["monitor", "evaluate", "pv-synth", "--from", "2012-06-02T00:00Z", "--to", "2012-06-30T00:00Z"],
        env=env,
    )
    assert res.exit_code == 0, res.output
    episodes = store.episodes("pv-synth")  # the default policy: shortfall, skill, accuracy-vs-training
    assert "pv-synth: 9 evaluations from 2012-06-02" in res.stdout
    assert f"in {len(episodes)} new episodes" in res.stdout and "episode of shortfall opened at" in res.stdout
    res = CliRunner().invoke(app, ["monitor", "episodes", "pv-synth"], env=env)
    assert res.exit_code == 0 and "shortfall" in res.stdout and "open" in res.stdout
    res = CliRunner().invoke(app, ["monitor", "status", "pv-synth"], env=env)
    opened = sum(e["open"] for e in episodes)
    assert res.exit_code == 0 and f"{opened} open / {len(episodes)}" in res.stdout
    bad = CliRunner().invoke(
        app, ["monitor", "evaluate", "pv-synth", "--from", "2012-06-09", "--to", "2012-06-01T00:00Z"], env=env
    )
    assert bad.exit_code == 2 and "--from '2012-06-09' has no time zone" in bad.output
    bad = CliRunner().invoke(app, ["monitor", "evaluate", "pv-synth", "--as-of", "2012-06-09T00:00Z",
                                   "--from", "2012-06-01T00:00Z"], env=env)  # fmt: skip
    assert bad.exit_code == 2 and "either --as-of" in bad.output


def test_the_service_makes_a_completed_retraining_the_challenger_on_train_completed(tmp_path):
    """No evaluation runs (interval None): the train.completed event alone sets the challenger."""
    import time

    from maestrale import Registry
    from maestrale.bus.events import CloudEvent
    from maestrale.bus.schemas import TrainCompleted
    from maestrale.config import load_settings
    from maestrale.monitoring.service import MonitorService

    settings = load_settings(home=tmp_path / "home", broker_url="memory://", bus_namespace=f"t{id(tmp_path)}")
    reg = Registry(settings=settings)
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    with MonitorService(settings, interval=None, relay=False) as svc:
        champion = reg.load(f"pv-synth:{v1}")
        for day in range(0, 8):
            log_day(svc.store, v1, champion, day, loss=0.2 if day >= 3 else 0.0)
        results = svc.monitor.backfill("pv-synth", START + timedelta(days=1), START + timedelta(days=7))
        request_id = next(r.retrain_request for r in results if r.retrain_request)
        v2 = register(reg, 0.8, START + timedelta(days=5))
        event = CloudEvent.create(
            TrainCompleted(request_id=request_id, name="pv-synth", version=v2, metrics={}, duration_s=1.0),
            subject="pv-synth",
        )
        svc.transport.publish_event(event)
        deadline = time.monotonic() + 10
        while "challenger" not in reg.get_model("pv-synth").aliases and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reg.get_model("pv-synth").aliases.get("challenger") == v2
        row = svc.store.overview("pv-synth")[0]
        assert row["retrain_status"] == "completed" and row["challenger_pairs"] > 0
