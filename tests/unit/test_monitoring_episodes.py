"""Episodes on a real SQLite store: a flickering condition is one, a clear window ends it, the peak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maestrale.cli._monitor_io import challenger_cell
from maestrale.monitoring.conditions import Breach
from maestrale.monitoring.episodes import update_episodes, worse
from maestrale.monitoring.policy import load_policy
from maestrale.monitoring.store import MonitorStore

POLICY = load_policy("""
name: t
conditions:
  - {name: skill, metric: skill, window: 3D, below: 0.2, min_samples: 1}
""")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def test_flicker_is_one_episode_and_a_clear_window_ends_it(tmp_path):
    store = MonitorStore(f"sqlite:///{tmp_path}/m.db")
    fired = {0: 0.15, 1: 0.05, 3: 0.1, 10: 0.12}  # day 2 clear (a flicker), days 4-9 clear (over)
    opened = []
    for d in range(0, 12):
        breaches = (
            [Breach("skill", "skill", fired[d], 0.2, "3D", 50, f"skill {fired[d]}")] if d in fired else []
        )
        with store._writer.begin() as conn:
            out = update_episodes(conn, model="m", version=1, policy=POLICY, as_of=day(d), breaches=breaches,
                                  breach_ids={})  # fmt: skip
        opened += [d for _, new in out.values() if new]
    assert opened == [0, 10]
    first, second = store.episodes("m")
    assert (first["started_at"], first["last_at"], first["breaches"]) == (day(0), day(3), 3)
    assert (first["peak_value"], first["peak_at"]) == (0.05, day(1))  # lowest skill is the worst
    assert first["ended_at"] == day(4) and not first["open"]  # clear from day 4 for the 3D window
    assert second["open"] and second["breaches"] == 1


def test_worse_follows_the_condition_direction():
    below, bias = (
        POLICY.conditions[0],
        load_policy("{name: b, conditions: [{name: b, metric: rbias, abs_above: 0.1}]}"),
    )
    assert worse(below, 0.05, 0.1) and not worse(below, 0.3, 0.1)
    assert worse(bias.conditions[0], -0.4, 0.3)
    assert worse(None, 0.5, 0.3)


def test_status_cell_shows_the_challenger_progress_or_the_retraining():
    assert challenger_cell({"challenger": 4, "challenger_pairs": 40, "challenger_min_samples": 72}) == (
        "v4: 40 of 72 out-of-sample pairs"
    )
    assert challenger_cell({"retrain_status": "requested", "last_retrain_request": "abcdef123"}) == (
        "retraining abcdef12 running"
    )
    assert challenger_cell({"retrain_status": "failed", "retrain_note": "r1: bad spec"}).startswith(
        "retraining failed: r1: bad spec"
    )
    assert challenger_cell({}) == "-"
