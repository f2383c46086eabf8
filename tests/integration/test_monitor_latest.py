"""The latest evaluation per (model, kind, window): a pointer kept at write time, read by key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maestrale.monitoring.store import MonitorStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path) -> MonitorStore:
    if request.param == "sqlite":
        return MonitorStore(f"sqlite:///{tmp_path / 'm.db'}")
    return MonitorStore(request.getfixturevalue("fresh_pg"))


def _add(store: MonitorStore, model: str, kind: str, window: str, day: int, nmae: float) -> None:
    as_of = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day)
    with store._writer.begin() as conn:
        store.add_evaluation(
            conn, model=model, version=1, kind=kind, window=window, as_of=as_of, n=24,
            values={"overall": {"nmae": nmae}},
        )  # fmt: skip


def test_the_newest_row_of_each_series_is_the_latest(store):
    for day in range(5):
        _add(store, "a", "performance", "3D", day, 0.01 * (day + 1))
        _add(store, "a", "performance", "7D", day, 0.1 * (day + 1))
        _add(store, "b", "drift", "7D", day, 0.2)
    rows = {(r["model"], r["kind"], r["window"]): r for r in store.latest_evaluations()}
    assert set(rows) == {("a", "performance", "3D"), ("a", "performance", "7D"), ("b", "drift", "7D")}
    assert rows["a", "performance", "3D"]["values"]["overall"]["nmae"] == pytest.approx(0.05)
    assert rows["a", "performance", "7D"]["as_of"] == datetime(2024, 1, 5, tzinfo=UTC)
    assert [r["window"] for r in store.latest_evaluations(model="a", kind="performance")] == ["3D", "7D"]
    assert store.latest_evaluations(kind="drift", model="a") == []
    # a rolled-back transaction moves no pointer
    with pytest.raises(RuntimeError), store._writer.begin() as conn:
        store.add_evaluation(
            conn, model="a", version=1, kind="performance", window="3D",
            as_of=datetime(2025, 1, 1, tzinfo=UTC), n=1, values={"overall": {"nmae": 9.0}},
        )  # fmt: skip
        raise RuntimeError("abort")
    latest = store.latest_evaluations(model="a", kind="performance")
    assert latest[0]["values"]["overall"]["nmae"] == pytest.approx(0.05)
