"""`maestrale demo --fleet 30`: the loop on a synthetic fleet, as a user runs it, its summary checked.

One process, as from a shell (its own fork server, thread budget and memory bus). The replay is
short enough for the suite (`DAYS`); `bench/fleet.py` replays the whole year for 50 to 1,000
plants. The faults are seeded (seed 0, 20 % of the PV plants), so the checks are deterministic
in what they judge: detection, the loop's effect on accuracy, the summary's shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pvlib", reason="the fleet needs maestrale[fleet]")

PLANTS, DAYS = 30, 30  # 6 faulted plants (20 %), 2 of them abrupt; 1 wind farm (1 per 25 plants)
WIND, FAULTED = max(1, PLANTS // 25), round(0.2 * PLANTS)
KEYS = {
    "plants", "pv", "wind", "days", "detection", "healthy", "nmae", "cpu_s_per_plant_day", "cpu_s",
    "initial_training", "evaluations", "retrainings", "promotions", "faults", "events", "elapsed_s",
}  # fmt: skip


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    summary = tmp / "summary.json"
    script = Path(sys.executable).with_name("maestrale")  # as from a shell: `maestrale demo …`
    command = [str(script)] if script.exists() else [sys.executable, "-m", "maestrale.cli.main"]
    cmd = [
        *command, "demo", "--fleet", str(PLANTS), "--days", str(DAYS), "--home", str(tmp / "demo"),
        "--summary", str(summary),
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "160"}
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(summary.read_text()), out.stdout


def test_fleet_summary_has_its_figures(fleet_run):
    s, output = fleet_run
    assert set(s) >= KEYS
    assert (s["plants"], s["pv"], s["wind"], s["days"]) == (PLANTS + WIND, PLANTS, WIND, DAYS)
    assert s["evaluations"] >= (PLANTS + WIND) * (DAYS - 2)  # every plant, every day with actuals
    for phase in ("ingest", "monitoring", "training", "forecast"):
        assert s["cpu_s_per_plant_day"][phase] >= 0
    assert s["cpu_s_per_plant_day"]["monitoring"] > 0 and s["cpu_s_per_plant_day"]["ingest"] > 0
    for kind in ("abrupt", "soiling", "shading", "offset", "overall"):
        assert {"faults", "recall", "precision", "days_to_detect"} <= set(s["detection"][kind])
    # the demo says who got which fault before the replay, and credits the data
    faulted = [f["plant"] for f in s["faults"]]
    assert len(faulted) == FAULTED and all(name in output for name in faulted)
    assert "PVGIS © European Union" in output and "E-126" in output


def test_abrupt_losses_are_detected_within_three_days(fleet_run):
    s, _ = fleet_run
    abrupt = s["detection"]["abrupt"]
    assert abrupt["faults"] >= 2
    assert abrupt["recall_within_3_days"] == 1.0, [f for f in s["faults"] if f["kind"] == "abrupt"]
    assert s["failed"] == 0


def test_the_loop_helps_the_faulted_plants_and_leaves_healthy_ones_alone(fleet_run):
    s, _ = fleet_run
    after = s["nmae"]["faulted_after_fault"]
    assert after["with_loop"] <= after["without_loop"]
    promoted = [f for f in s["faults"] if f["promotions"]]
    assert promoted, "no faulted plant got a better champion"
    for f in promoted:
        assert f["nmae_after_fault"] < f["nmae_after_fault_without_loop"], f
    # healthy plants: no retraining promoted on them in these days (the policy's false-alarm budget)
    assert s["healthy"]["promotions"] == 0
    assert s["nmae"]["fleet"]["with_loop"] <= s["nmae"]["fleet"]["without_loop"]
