"""The column-wise ingest path (monitoring/_columns.py) against the reference, with hostile records.

A `prediction.logged` body decoded by msgspec must store exactly what the pydantic path stores and
reject the same records with the same reasons; a body it does not take whole goes the reference way.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from maestrale.bus.events import CloudEvent, parse_event
from maestrale.bus.schemas import PredictionLogged
from maestrale.monitoring._columns import PredictionColumns, decode_prediction_event
from maestrale.monitoring.ingest import checked_predictions
from maestrale.monitoring.service import lenient_parse
from maestrale.monitoring.store import MonitorStore
from tests.integration.test_monitoring_ingest import count, model_name, records


def body_of(batch: list[Any], model: str = "pv-x") -> bytes:
    # records as raw JSON: hostile values (wrong types, huge numbers) go on the wire as a client sends them
    env = CloudEvent(
        source="test", type=PredictionLogged.type, subject=model, dataschema=PredictionLogged.dataschema(),
        data={"model": model, "version": 1, "records": []},
    ).to_json()  # fmt: skip
    return env.replace(b'"records":[]', b'"records":' + json.dumps(batch).encode())


def reference(body: bytes) -> tuple[list[Any], list[Any]]:
    event = CloudEvent.from_json(body)  # the lenient parser's slow path: records as plain dicts
    return checked_predictions(event.data["records"])


def test_a_clean_batch_takes_the_fast_path_and_matches_the_reference() -> None:
    body = body_of(records(50))
    event = decode_prediction_event(body)
    assert event is not None and isinstance(event.data["records"], PredictionColumns)
    fast, rejected = checked_predictions(event.data["records"])
    ref, ref_rejected = checked_predictions(parse_event(body).payload.records)
    assert rejected == ref_rejected == []
    assert [f[:7] for f in fast] == [r[:7] for r in ref]
    assert [json.loads(f[7]) for f in fast] == [r[7] for r in ref]


HOSTILE: list[tuple[str, Any]] = [
    ("naive time", {"issued_at": "2026-06-01T00:00:00"}),
    ("bad time", {"target_time": "yesterday"}),
    ("empty id", {"record_id": ""}),
    ("long id", {"record_id": "r" * 129}),
    ("long entity", {"entity": "e" * 500}),
    ("NUL in id", {"record_id": "a\x00b"}),
    ("empty quantiles", {"prediction": []}),
    ("horizon mismatch", {"horizon": 60}),
    ("features not an object", {"features": [1, 2]}),
]


@pytest.mark.parametrize(("name", "change"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_record_is_rejected_like_the_reference_and_the_rest_land(name: str, change: Any) -> None:
    batch = records(5)
    batch[2] = {**batch[2], **change}
    body = body_of(batch)
    event = decode_prediction_event(body)
    assert event is not None, "a batch of the right types stays on the fast path"
    fast, rejected = checked_predictions(event.data["records"])
    ref, ref_rejected = reference(body)
    assert [(r.index, r.reason, r.record_id) for r in rejected] == [
        (r.index, r.reason, r.record_id) for r in ref_rejected
    ]
    assert [r.index for r in rejected] == [2] and len(fast) == len(ref) == 4
    assert [f[:7] for f in fast] == [r[:7] for r in ref]


@pytest.mark.parametrize(
    "change",
    [
        {"prediction": None},  # wrong type
        {"prediction": "NaN-literal"},  # replaced by a NaN literal below
        {"features": {"ghi": "1e999-number"}},  # a number too large for a float
        {"entity": 7},  # wrong type
        {"issued_at": 1780000000},  # a time as a number: pydantic's rules, not the fast path's
    ],
)
def test_a_batch_the_fast_decoder_refuses_goes_the_reference_way(change: dict[str, Any]) -> None:
    batch = records(5)
    batch[3] = {**batch[3], **change}
    body = body_of(batch).replace(b'"NaN-literal"', b"NaN").replace(b'"1e999-number"', b"1e999")
    assert decode_prediction_event(body) is None
    event = lenient_parse(body)  # the reference: good records kept, the bad one named
    fast, rejected = checked_predictions(event.data["records"])
    assert len(fast) + len(rejected) == 5
    if change.get("features"):  # 1e999 parses as inf: stored as null, as any non-finite feature
        assert fast[3][7] == {"ghi": None}


def test_duplicates_and_quantiles_on_the_fast_path() -> None:
    batch = records(4)
    batch.append({**batch[1]})  # a repeat of record 1
    batch[0] = {**batch[0], "prediction": [1.0, 2.0, 4.0]}
    batch[3] = {**batch[3], "prediction": "cloudy"}
    body = body_of(batch)
    event = decode_prediction_event(body)
    assert event is not None
    fast, rejected = checked_predictions(event.data["records"])
    assert [(r.index, "repeats" in r.reason) for r in rejected] == [(4, True)]
    assert [(f[5], f[6]) for f in fast] == [
        (2.0, [1.0, 2.0, 4.0]),
        (0.25, None),
        (0.5, None),
        (None, "cloudy"),
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MonitorStore:
    if request.param == "sqlite":
        return MonitorStore(f"sqlite:///{tmp_path}/monitor.db")
    return MonitorStore(request.getfixturevalue("pg_url"))


def test_the_store_keeps_the_good_records_of_a_hostile_fast_batch(store: MonitorStore) -> None:
    model = model_name()
    batch = records(10)
    batch[4] = {**batch[4], "record_id": "x" * 300}  # PostgreSQL would refuse the whole COPY
    batch[6] = {**batch[6], "entity": "a\x00"}
    event = decode_prediction_event(body_of(batch, model))
    assert event is not None
    result = store.log_predictions(model, 1, event.data["records"])
    assert (result.stored, [r.index for r in result.rejected]) == (8, [4, 6])
    assert "128" in result.rejected[0].reason and "NUL" in result.rejected[1].reason
    assert count(store, model) == 8
    again = store.log_predictions(model, 1, decode_prediction_event(body_of(batch, model)).data["records"])  # type: ignore[union-attr]
    assert (again.stored, again.duplicates) == (0, 8)
    logged = store.logged(model, *_window())
    assert sorted(logged["prediction"]) == sorted(
        r["prediction"] for i, r in enumerate(batch) if i not in (4, 6)
    )


def _window() -> tuple[Any, Any]:
    from datetime import timedelta

    from tests.integration.test_monitoring_ingest import T0

    return T0 - timedelta(days=1), T0 + timedelta(days=2)


def test_extension_attributes_keep_the_fast_path() -> None:
    body = body_of(records(3)).replace(b'{"specversion"', b'{"traceparent":"00-ab-cd-01","specversion"')
    event = decode_prediction_event(body)
    assert event is not None and event.model_extra == {"traceparent": "00-ab-cd-01"}
    assert str(uuid.UUID(event.id)) == event.id
