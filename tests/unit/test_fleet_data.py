"""The synthetic fleet: deterministic, physically plausible, and each seeded fault does what it says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pvlib")

from maestrale.datasets.fleet import KINDS, Fleet, synthetic_fleet
from maestrale.datasets.fleet._faults import Fault


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return synthetic_fleet(12, seed=3, fault_share=0.5)


def test_same_seed_same_fleet_and_data(fleet: Fleet) -> None:
    again = synthetic_fleet(12, seed=3, fault_share=0.5)
    pd.testing.assert_frame_equal(fleet.table(), again.table())
    pd.testing.assert_frame_equal(fleet.frame("pv-it-004"), again.frame("pv-it-004"))
    other = synthetic_fleet(12, seed=4, fault_share=0.5)
    assert not fleet.table()["latitude"].equals(other.table()["latitude"])


def test_fault_share_and_kinds(fleet: Fleet) -> None:
    table = fleet.table()
    pv = table[table.kind == "pv"]
    faulty = pv[pv.fault_kind.notna()]
    assert len(faulty) == 6
    assert set(faulty.fault_kind) == set(KINDS)  # the kinds in turn: 6 faults cover all 4
    replay = fleet.replay_start
    assert all(
        replay + pd.Timedelta(days=30) <= s < replay + pd.Timedelta(days=365) for s in faulty.fault_start
    )
    assert (table.kind == "wind").sum() == 1
    assert table.latitude.between(36.5, 47.0).all() and table.longitude.between(6.5, 18.6).all()


def test_pv_power_is_physical(fleet: Fleet) -> None:
    healthy = [s for s in fleet.sites if s.kind == "pv" and s.fault is None]
    yields = {}
    for site in healthy:
        frame = fleet.frame(site.name)
        assert list(frame.columns) == ["ghi", "ghi_clear", "temp_air", "power_kw"]
        assert (frame.power_kw >= 0).all() and (frame.power_kw <= site.capacity_kw).all()
        night = frame.ghi_clear == 0
        assert (frame.power_kw[night] == 0).all(), "power at night"
        first_year = frame.loc[: fleet.replay_start - pd.Timedelta(hours=1)]
        yields[site.name] = (first_year.power_kw.sum() / site.capacity_kw, site.latitude)
    # kWh per kW AC per year: Italy spans about 1,100 (Alps foothills) to 1,800 (Sicily)
    assert all(1000 < y < 1950 for y, _ in yields.values()), yields
    ys, lats = zip(*yields.values(), strict=True)
    assert np.corrcoef(ys, lats)[0, 1] < 0, "the south should yield more"


def test_each_fault_changes_only_what_it_says() -> None:
    base = synthetic_fleet(1, seed=11, fault_share=0.0, n_wind=0)
    site = base.sites[0]
    clean = base.frame(site.name).power_kw.to_numpy()
    start = base.replay_start + pd.Timedelta(days=60)
    faults = {
        "abrupt": Fault("abrupt", start, 0.25),
        "soiling": Fault("soiling", start, 0.2, rate_per_day=0.005),
        "shading": Fault("shading", start, 0.8, hours=(7, 8)),
        "offset": Fault("offset", start, 0.05),
    }
    times = base.times
    before = np.asarray(times < start)
    for kind, fault in faults.items():
        faulty = Fleet((dataclasses.replace(site, fault=fault),), base.train_year, base.seed)
        power = faulty.frame(site.name).power_kw.to_numpy()
        np.testing.assert_array_equal(power[before], clean[before], err_msg=kind)
        after = ~before
        if kind == "abrupt":
            np.testing.assert_allclose(power[after], clean[after] * 0.75)
        elif kind == "soiling":
            day_90 = after & np.asarray(times >= start + pd.Timedelta(days=40))
            np.testing.assert_allclose(power[day_90], clean[day_90] * 0.8)  # capped at 20 %
        elif kind == "shading":
            hours = np.isin(np.asarray(times.hour), (7, 8))
            np.testing.assert_allclose(power[after & hours], clean[after & hours] * 0.2)
            np.testing.assert_array_equal(power[after & ~hours], clean[after & ~hours])
        else:
            np.testing.assert_allclose(power[after], clean[after] + 0.05 * site.capacity_kw)
        assert faulty.fault_active(site.name).to_numpy()[before].sum() == 0


def test_wind_farm_capacity_factor_is_plausible(fleet: Fleet) -> None:
    site = next(s for s in fleet.sites if s.kind == "wind")
    frame = fleet.frame(site.name)
    cf = frame.power_kw.mean() / site.capacity_kw
    assert 0.15 < cf < 0.5, cf
    assert frame.power_kw.max() <= site.capacity_kw * 1.1
