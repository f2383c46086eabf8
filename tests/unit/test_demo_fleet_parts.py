"""The fleet demo's parts without the loop: fault dates inside a short replay, the world on disk, the
one fleet spec, and the summary's scoring of detections (the loop itself: tests/e2e/test_demo_fleet.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pvlib", reason="the fleet needs maestrale[fleet]")

from maestrale.datasets.fleet import synthetic_fleet
from maestrale.demo.fleet_loop import FleetEvent, FleetLog, children_cpu
from maestrale.demo.fleet_summary import detection, faults, healthy
from maestrale.demo.fleet_world import FleetWorld


@pytest.mark.parametrize("days", [20, 60, 120, 365])
def test_faults_start_inside_the_replayed_days(days):
    fleet = synthetic_fleet(40, seed=5, fault_share=0.5, replay_days=days)
    starts = [(s.fault.start - fleet.replay_start).days for s in fleet.sites if s.fault]
    assert len(starts) == 20
    assert min(starts) >= min(30, days // 4) and max(starts) < days - min(45, days * 3 // 8)


def test_replay_days_is_checked():
    with pytest.raises(ValueError, match="at least 1"):
        synthetic_fleet(3, replay_days=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    fleet = synthetic_fleet(4, n_wind=1, seed=2, fault_share=0.5, replay_days=10)
    w = FleetWorld(tmp_path_factory.mktemp("fleet"), fleet, 10)
    w.build()
    return w


def test_the_world_holds_the_replayed_days_and_the_lake_the_first_year(world):
    import sqlite3

    frame = world.fleet.frame("pv-it-001")
    day3 = world.inputs(0, world.hours(3))
    assert list(day3.columns) == ["ghi", "ghi_clear", "temp_air"] and len(day3) == 24
    assert day3.index[0] == pd.Timestamp("2022-01-04", tz="UTC")
    np.testing.assert_allclose(day3["ghi"], frame.loc[day3.index, "ghi"], rtol=1e-6)
    np.testing.assert_allclose(world.actual(0, world.hours(3)), frame.loc[day3.index, "power_kw"], rtol=1e-6)
    with sqlite3.connect(world.lake_path) as lake:
        assert lake.execute("SELECT count(*) FROM pv WHERE site = 'pv-it-001'").fetchone() == (8760,)
        world.deliver(0)  # the pipeline lands day 0: 24 more rows per plant, in the lake's time format
        assert lake.execute("SELECT count(*), max(time) FROM wind").fetchone() == (
            8760 + 24, "2022-01-01 23:00:00.000000",
        )  # fmt: skip


def test_one_fleet_spec_trains_every_plant(world):
    from maestrale.demo.fleet import fleet_spec
    from maestrale.training.fleet import expand_fleet
    from maestrale.training.spec import TrainingSpec

    members = expand_fleet(TrainingSpec.model_validate(fleet_spec(world)))
    assert [m.name for m in members] == [p.name for p in world.plants]
    pv, wind = members[0], members[-1]
    assert pv.feature_set == "pv_features" and "site = 'pv-it-001'" in pv.data.sql.query
    assert wind.feature_set is None and wind.features == [
        "wind_speed",
        "wind_direction",
        "air_density",
        "temp_air",
    ]
    assert "FROM wind WHERE site = 'wind-it-01'" in wind.data.sql.query
    assert pv.capacity == world.plants[0].capacity and pv.tags["fleet"] == "italy"


def test_detections_are_scored_against_the_seeded_faults(world):
    faulted = [p for p in world.plants if p.site.fault]
    healthy_plant = next(p for p in world.plants if p.site.fault is None)
    f = faulted[0]
    start = (f.site.fault.start - world.start).days
    log = FleetLog()
    # a breach before the fault (false), then on day start + 2 (a detection after 2 days of faulty actuals)
    log.breaches += [(start - 1, f.index, "shortfall", True), (start + 2, f.index, "shortfall", True)]
    log.events += [
        FleetEvent(start - 1, f.index, "alert", "shortfall", True),
        FleetEvent(start + 2, f.index, "alert", "shortfall", True),
        FleetEvent(1, healthy_plant.index, "alert", "shortfall", True),
        FleetEvent(1, healthy_plant.index, "retrain"),
        FleetEvent(1, healthy_plant.index, "alert", "input-drift", False),
    ]
    rows = faults(world, log)
    row = next(r for r in rows if r["plant"] == f.name)
    assert row["days_to_detect"] == 2 and row["kind"] == f.site.fault.kind
    d = detection(rows, world, log)[f.site.fault.kind]
    assert d["precision"] == 0.5 and d["alerts"] == 2
    h = healthy(world, log)
    assert (h["alerts"], h["alert_only_episodes"], h["retrainings"], h["promotions"]) == (1, 1, 1, 0)


def test_children_cpu_counts_the_processes_this_one_started():
    import subprocess
    import sys

    before = children_cpu()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert children_cpu() - before > 0.05


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "30"], "--days applies to --fleet only"),
        (["--fleet", "3", "--no-fault"], "--no-fault applies to the NREL replay"),
    ],
)
def test_an_option_of_the_other_replay_is_refused(tmp_path, args, message):
    from typer.testing import CliRunner

    from maestrale.cli.main import app

    out = CliRunner().invoke(app, ["demo", "--home", str(tmp_path / "demo"), *args])
    assert out.exit_code == 2 and message in " ".join(out.output.split()), out.output
    assert not (tmp_path / "demo").exists()  # refused before anything was built
