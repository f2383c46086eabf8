"""The monitoring page's chart specs on inputs the demo world lacks: several entities, long histories,
values outside the training range, NaN figures, same-time events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd

from maestrale.ui import monitoring_view as view

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _perf(day: int, window: str, entities: dict[str, float]) -> dict:
    by_entity = {e: {"nmae": v, "bias": v / 2} for e, v in entities.items()}
    return {
        "as_of": T0 + timedelta(days=day), "window": window, "version": 1, "n": 24,
        "values": {"overall": {"nmae": 0.05, "skill": float("nan")}, "by_entity": by_entity,
                   "by_horizon": {">7d": {"nmae": 0.2}, "0-6h": {"nmae": 0.1}}},
    }  # fmt: skip


def test_a_line_per_entity_bounded_and_json_safe():
    entities = {f"plant-{i:02d}": 0.01 * i for i in range(14)}
    rows = [_perf(d, w, entities) for d in range(3) for w in ("7D", "3D")]
    keys, total = view.split_keys([r for r in rows if r["window"] == "7D"], "entity")
    assert total == 14 and keys == sorted(entities)[: view.MAX_LINES]
    charts = view.performance_charts(rows, by="entity", window="7D")
    nmae = charts[0]
    assert nmae["id"] == "perf-nmae" and len(nmae["series"]) == view.MAX_LINES
    assert nmae["series"][3] == {"label": "plant-03 (7D)", "values": [0.03, 0.03, 0.03]}
    assert len(nmae["x"]) == 3
    overall = view.performance_charts(rows)
    assert [s["label"] for s in overall[0]["series"]] == ["3D", "7D"]  # shortest window first
    skill = next(c for c in overall if c["id"] == "perf-skill")
    assert skill["series"][0]["values"] == [None, None, None]  # NaN: a gap, and JSON.parse-able
    json.loads(json.dumps(overall, allow_nan=False))
    horizon, _ = view.split_keys(rows, "horizon")
    assert horizon == ["0-6h", ">7d"]  # lead-time order, not alphabetical


def test_long_series_are_thinned_to_the_point_budget():
    rows = [{**_perf(0, "7D", {}), "as_of": T0 + timedelta(hours=h)} for h in range(12_000)]
    chart = view.performance_charts(rows)[0]
    newest = int((T0 + timedelta(hours=11_999)).timestamp())
    assert len(chart["x"]) <= view.MAX_POINTS and chart["x"][-1] == newest  # the newest is kept
    assert view.bucket_seconds(0, 365 * 86400) == 7200 and view.bucket_seconds(0, 86400) == 3600


def test_forecast_chart_from_buckets():
    buckets = pd.DataFrame({
        "t": [0, 0, 3600], "version": [1, 2, 1], "prediction": [1.0, 2.0, 3.0], "actual": [1.5, 1.5, 2.5],
        "n": [2, 1, 1],
    })  # fmt: skip
    spec = view.forecast_chart(buckets, 3600)
    assert spec["x"] == [0, 3600]
    assert [s["label"] for s in spec["series"]] == ["actual", "forecast v1", "forecast v2"]
    assert spec["series"][0]["values"] == [1.5, 2.5]
    assert spec["series"][2]["values"] == [2.0, None]  # v2 forecast only the first hour
    assert view.forecast_chart(None, 3600)["x"] == []


def test_histogram_counts_values_outside_the_reference_in_the_outer_bins():
    reference = {"edges": [0.0, 1.0, 2.0, 3.0], "counts": [5, 3, 2]}
    spec = view.histogram_chart(reference, np.array([-4.0, 0.5, 1.0, 2.5, 9.0, np.nan]))
    assert spec["n"] == 5 and spec["outside"] == 2
    assert spec["series"][0]["values"] == [0.5, 0.3, 0.2]
    assert spec["series"][1]["values"] == [0.4, 0.2, 0.4]  # [-4, 0.5] | [1.0] | [2.5, 9]
    assert view.histogram_chart({"edges": [], "counts": []}, np.array([1.0]))["series"] == []


def test_drift_heatmap_and_timeline_order():
    drift = [
        {"as_of": T0 + timedelta(days=d), "window": "7D",
         "values": {"stats": {"ghi": {"psi": 0.1 * d}, "<predictions>": {"psi": None}}}}
        for d in range(3)
    ] + [{"as_of": T0, "window": "7D", "values": {"n": 0, "note": "no data"}}]  # fmt: skip
    heat = view.drift_heatmap(drift, "7D")
    assert heat["rows"] == ["<predictions>", "ghi"] and len(heat["x"]) == 3
    assert heat["values"] == [[None, None, None], [0.0, 0.1, 0.2]]
    at = T0 + timedelta(days=5)
    breach = {"id": 7, "as_of": at, "condition": "shortfall"}
    decision = {"id": 1, "as_of": at, "outcome": "promoted"}
    retrain = SimpleNamespace(as_of=at, request_id="r1", status="completed", version=2, parent_version=1,
                              reason="monitor", error=None)  # fmt: skip
    old = {"id": 3, "as_of": T0, "condition": "skill"}
    items = view.timeline([old, breach], [decision], [retrain], since=T0 + timedelta(days=1))
    assert [i["kind"] for i in items] == ["decision", "retraining", "breach"]  # the breach caused the rest
