"""Scored pairs averaged per time bucket by the database (the web UI's forecast-vs-actual chart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from maestrale.monitoring.store import MonitorStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path) -> MonitorStore:
    if request.param == "sqlite":
        return MonitorStore(f"sqlite:///{tmp_path / 'm.db'}")
    return MonitorStore(request.getfixturevalue("fresh_pg"))


def _records(version: int, hours: int, offset: float) -> list[dict]:
    issued = (T0 - timedelta(hours=6)).isoformat()
    return [
        {"record_id": f"v{version}/{h}", "entity": "plant", "issued_at": issued,
         "target_time": (T0 + timedelta(hours=h)).isoformat(), "features": {"ghi": float(h)},
         "prediction": h + offset}
        for h in range(hours)
    ]  # fmt: skip


def test_buckets_equal_the_means_of_the_scored_pairs(store):
    store.log_predictions("m", 1, _records(1, 50, 0.5))
    store.log_predictions("m", 2, _records(2, 30, -0.25))  # a challenger forecasting the first 30 h
    store.log_actuals([
        {"entity": "plant", "target_time": (T0 + timedelta(hours=h)).isoformat(), "value": float(h)}
        for h in range(45)  # the last 5 hours have no actual yet: not scored
    ])  # fmt: skip
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=3)
    buckets = store.scored_buckets("m", start, end, 6 * 3600)
    scored = store.scored("m", start, end)
    t = scored["target_time"].dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype("int64")
    expected = (
        scored.assign(t=t // 21600 * 21600)
        .groupby(["t", "version"])
        .agg(prediction=("prediction", "mean"), actual=("actual", "mean"), n=("actual", "size"))
        .reset_index()
    )
    assert buckets.columns.tolist() == ["t", "version", "prediction", "actual", "n"]
    assert len(buckets) == len(expected) == 8 + 5  # v1: 45 h in 6-h buckets; v2: 30 h
    assert buckets["n"].sum() == 45 + 30
    assert buckets["t"].iloc[0] == int(T0.timestamp())
    for col in ("t", "version", "n"):
        assert buckets[col].tolist() == expected[col].tolist(), col
    assert np.allclose(buckets["prediction"], expected["prediction"])
    assert np.allclose(buckets["actual"], expected["actual"])
    assert store.data_start("m") == T0
    assert store.scored_buckets("m", end, end + timedelta(days=1), 3600).empty
    assert store.data_start("nobody") is None
    with pytest.raises(ValueError, match="positive"):
        store.scored_buckets("m", start, end, 0)
