"""The monitor's ingest on SQLite and PostgreSQL: per-record validation, exact idempotent counts, upserts.

PostgreSQL writes a batch with a binary COPY straight into the table and, when a key is already
stored, through a temp table and `INSERT … ON CONFLICT`; SQLite with one `executemany`. Both must
give the same rows and the same `stored` / `duplicates` counts, and so must the monitor service
when the batches come through RabbitMQ.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maestrale.bus.schemas import PredictionRecord
from maestrale.monitoring import schema as t
from maestrale.monitoring.ingest import validate_predictions
from maestrale.monitoring.store import MonitorStore
from tests.integration.conftest import wait_for

T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MonitorStore:
    """A MonitorStore on each database (PostgreSQL: the session's database, so models are unique)."""
    if request.param == "sqlite":
        return MonitorStore(f"sqlite:///{tmp_path}/monitor.db")
    return MonitorStore(request.getfixturevalue("pg_url"))


def model_name() -> str:
    return f"pv-{uuid.uuid4().hex[:8]}"


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def records(n: int, start: int = 0, entity: str = "plant-1") -> list[dict[str, Any]]:
    issued = T0 - timedelta(hours=6)
    return [
        {
            "record_id": f"{entity}/{iso(issued)}/{i}",
            "entity": entity,
            "issued_at": iso(issued),
            "target_time": iso(T0 + timedelta(hours=i)),
            "features": {"ghi": 100.0 + i, "temp_air": 12.5, "hour_sin": math.sin(i)},
            "prediction": 0.25 * i,
        }
        for i in range(start, start + n)
    ]


def count(store: MonitorStore, model: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).where(t.predictions.c.model == model)).scalar_one()


def test_a_batch_with_bad_records_stores_the_good_ones_and_names_the_bad(store: MonitorStore) -> None:
    model = model_name()
    good = records(3)
    naive = {**records(1, 10)[0], "issued_at": "2026-06-01T00:00:00"}
    nan = {**records(1, 11)[0], "prediction": float("nan")}
    horizon = {**records(1, 12)[0], "horizon": 60}
    repeat = {**records(1, 13)[0], "record_id": good[0]["record_id"]}
    empty = {**records(1, 14)[0], "prediction": []}
    no_entity = {k: v for k, v in records(1, 15)[0].items() if k != "entity"}
    quantiles = {**records(1, 16)[0], "prediction": [1.0, 2.0, 4.0]}
    label = {**records(1, 17)[0], "prediction": "cloudy"}
    missing_input = {**records(1, 18)[0], "features": {"ghi": float("nan"), "site": "a", "ok": 1}}
    batch = [*good, naive, nan, horizon, repeat, empty, no_entity, quantiles, label, missing_input]

    result = store.log_predictions(model, 1, batch)

    assert (result.stored, result.duplicates) == (6, 0)
    reasons = {r.index: (r.record_id, r.reason) for r in result.rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert "time zone" in reasons[3][1] and reasons[3][0] == naive["record_id"]
    assert "finite" in reasons[4][1]
    assert "horizon" in reasons[5][1]
    assert "repeats" in reasons[6][1] and reasons[6][0] == good[0]["record_id"]
    assert "empty list" in reasons[7][1]
    assert "entity" in reasons[8][1]

    logged = store.logged(model, T0 - timedelta(days=1), T0 + timedelta(days=2))
    points = list(logged["prediction"])  # the middle quantile stands for a quantile forecast; a label: none
    assert points[:4] + points[5:] == [0.0, 0.25, 0.5, 2.0, 4.5] and math.isnan(points[4])
    assert list(logged["horizon_s"]) == [6 * 3600 + 3600 * i for i in (0, 1, 2, 16, 17, 18)]
    assert logged["target_time"].iloc[0] == T0
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.predictions.c.record_id, t.predictions.c.output, t.predictions.c.features)
            .where(t.predictions.c.model == model)
            .order_by(t.predictions.c.id)
        ).all()
    assert [r.record_id for r in rows] == [r["record_id"] for r in (*good, quantiles, label, missing_input)]
    assert [r.output for r in rows] == [None, None, None, [1.0, 2.0, 4.0], "cloudy", None]
    assert rows[0].features == {"ghi": 100.0, "temp_air": 12.5, "hour_sin": 0.0}
    assert rows[-1].features == {"ghi": None, "site": "a", "ok": 1}  # NaN stored as null


def test_a_resent_batch_is_idempotent_with_exact_counts(store: MonitorStore) -> None:
    model = model_name()
    first = records(1000)
    assert store.log_predictions(model, 2, first).as_dict() == {
        "stored": 1000,
        "duplicates": 0,
        "rejected": [],
    }
    again = store.log_predictions(model, 2, first)
    assert (again.stored, again.duplicates) == (0, 1000)
    # half stored already, half new: the new half only, in the batch's order
    overlap = records(1000, 500)
    mixed = store.log_predictions(model, 2, overlap)
    assert (mixed.stored, mixed.duplicates) == (500, 500)
    assert count(store, model) == 1500
    with store.engine.connect() as conn:
        ids = conn.execute(
            select(t.predictions.c.record_id)
            .where(t.predictions.c.model == model)
            .order_by(t.predictions.c.id)
        ).scalars()
        assert list(ids) == [r["record_id"] for r in records(1500)]
    # the same record ids under another model are other predictions
    assert store.log_predictions(model_name(), 2, first).stored == 1000


def test_typed_records_store_what_their_dicts_store(store: MonitorStore) -> None:
    plain, typed = model_name(), model_name()
    batch = records(48)
    assert store.log_predictions(plain, 1, batch).stored == 48
    assert store.log_predictions(typed, 1, [PredictionRecord(**r) for r in batch]).stored == 48
    window = (T0 - timedelta(days=1), T0 + timedelta(days=3))
    assert store.logged(plain, *window).equals(store.logged(typed, *window))


def test_validate_predictions_rows_are_in_utc_with_their_own_features() -> None:
    rec = {**records(1)[0], "issued_at": "2026-06-01T02:00:00+02:00", "target_time": "2026-06-01T03:00+02:00"}
    rows, rejected = validate_predictions([rec, PredictionRecord(**rec)])
    assert rejected[0].index == 1 and "repeats" in rejected[0].reason
    (row,) = rows
    assert row["issued_at"] == T0 and row["issued_at"].tzinfo == UTC
    assert row["target_time"] == T0 + timedelta(hours=1) and row["horizon_s"] == 3600
    assert row["features"] == rec["features"] and row["features"] is not rec["features"]


def test_actuals_upsert_replaces_a_corrected_value(store: MonitorStore) -> None:
    entity = f"plant-{uuid.uuid4().hex[:6]}"
    times = [T0 + timedelta(hours=h) for h in range(24)]
    first = store.log_actuals(
        [{"entity": entity, "target_time": iso(x), "value": 1.0 + i} for i, x in enumerate(times)]
    )
    assert (first.stored, first.rejected) == (24, [])
    corrected = store.log_actuals(
        [
            {"entity": entity, "target_time": iso(times[3]), "value": 40.0},  # replaced
            {"entity": entity, "target_time": "2026-06-01T06:00:00+02:00", "value": 50.0},  # = times[4]
            {"entity": entity, "target_time": iso(times[5]), "value": float("nan")},  # rejected
            {"entity": entity, "target_time": "2026-06-01T07:00:00", "value": 1.0},  # naive: rejected
            {"entity": entity, "target_time": iso(times[0]), "value": 7.0},
            {"entity": entity, "target_time": iso(times[0]), "value": 8.0},  # a later duplicate wins
            {"entity": entity, "target_time": iso(T0 + timedelta(hours=24)), "value": 9.0},  # new
        ]
    )
    assert corrected.stored == 4
    assert [r.index for r in corrected.rejected] == [2, 3]
    series = store.actual_series([entity], T0, T0 + timedelta(days=2)).sort_values("target_time")
    values = dict(zip(series["target_time"], series["value"], strict=True))
    assert len(values) == 25
    assert values[times[0]] == 8.0 and values[times[3]] == 40.0 and values[times[4]] == 50.0
    assert values[times[5]] == 6.0 and values[T0 + timedelta(hours=24)] == 9.0


# -- through RabbitMQ, into a real MonitorService ----------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def service(request: pytest.FixtureRequest, amqp_url: str, tmp_path: Path) -> Iterator[Any]:
    from maestrale.config import load_settings
    from maestrale.monitoring.service import MonitorService

    db = (
        f"sqlite:///{tmp_path}/monitor.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    settings = load_settings(
        home=tmp_path / "home",
        database_url=db,
        broker_url=amqp_url,
        bus_namespace=f"test-{uuid.uuid4().hex[:10]}",
    )
    svc = MonitorService(settings, interval=None, relay=False).start()
    yield svc
    svc.stop()
    svc.transport.delete()
    svc.transport.close()


def test_a_batch_with_one_bad_record_through_rabbitmq_stores_the_others(service: Any) -> None:
    from maestrale.bus.events import CloudEvent
    from maestrale.bus.schemas import PredictionLogged

    model = model_name()
    batch = records(200)
    batch[17] = {**batch[17], "target_time": "2026-06-02T09:00:00"}  # no time zone
    event = CloudEvent(
        source="maestrale/sdk", type=PredictionLogged.type, subject=model,
        dataschema=PredictionLogged.dataschema(), data={"model": model, "version": 1, "records": batch},
    )  # fmt: skip
    service.transport.publish_events([event])
    wait_for(lambda: service.stats.predictions == 199, 30, "199 stored predictions")
    assert service.stats.rejected == 1
    (rejection,) = service.last_rejections
    assert rejection["index"] == 17 and rejection["record_id"] == batch[17]["record_id"]
    assert "time zone" in rejection["reason"]
    assert count(service.store, model) == 199

    # redelivered (at least once): nothing stored twice, the counts say so
    service.transport.publish_events([event])
    wait_for(lambda: service.stats.duplicates == 199, 30, "199 duplicates")
    assert service.stats.predictions == 199 and count(service.store, model) == 199
    assert service.consumer.stats.failures == 0
