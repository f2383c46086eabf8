"""The event contract: CloudEvents envelope, typed payloads, clear errors, documented schemas."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maestrale.bus.events import CloudEvent, MalformedEvent, parse_event, validate_payload
from maestrale.bus.schemas import (
    EVENT_TYPES,
    PredictionLogged,
    PredictionRecord,
    TrainRequested,
    markdown,
)
from maestrale.bus.transport import RetryPolicy
from maestrale.bus.transports.memory import topic_matches
from maestrale.errors import InvalidInput

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
T0 = datetime(2026, 11, 26, 12, tzinfo=UTC)


def train_requested() -> CloudEvent:
    payload = TrainRequested(request_id="r-1", idempotency_key="pv-p50-2026-11", spec={"name": "pv-p50"})
    return CloudEvent.create(payload, subject="pv-p50", source="tests")


def test_roundtrip_keeps_every_attribute_and_types_the_payload():
    ev = train_requested()
    back = parse_event(ev.to_json())
    assert back == ev
    assert back.dataschema == "urn:maestrale:event:train.requested:v1"
    assert isinstance(back.payload, TrainRequested) and back.payload.spec == {"name": "pv-p50"}
    assert back.time.tzinfo is not None and uuid.UUID(back.id)


def test_a_plain_client_may_omit_optional_attributes_and_add_extensions():
    raw = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "pv-service",
        "type": "maestrale.actual.logged",
        "time": "2026-11-26T12:00:00+01:00",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "data": {"records": [{"entity": "p50", "target_time": "2026-11-26T12:00:00Z", "value": 3.5}]},
    }
    ev = parse_event(json.dumps(raw))
    assert ev.dataschema == "urn:maestrale:event:actual.logged:v1" and ev.subject is None
    assert ev.model_extra == {"traceparent": raw["traceparent"]}
    assert json.loads(ev.to_json())["traceparent"] == raw["traceparent"]


def test_prediction_records_accept_iso_or_seconds_horizons():
    rec = {
        "record_id": "x1",
        "entity": "p50",
        "issued_at": "2026-11-26T00:00:00Z",
        "target_time": "2026-11-26T06:00:00Z",
        "features": {"ghi": 410.0, "temp": 11.5},
        "prediction": 12.5,
    }
    ev = CloudEvent(
        source="t",
        type="maestrale.prediction.logged",
        data={"model": "pv", "version": 3, "records": [rec | {"horizon": "PT6H"}, rec | {"horizon": 21600}]},
    )
    p = ev.payload
    assert isinstance(p, PredictionLogged)
    assert [r.horizon for r in p.records] == [timedelta(hours=6)] * 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"specversion": "1.0", "id": ', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "invalid envelope: (root): Input should be an object"),
        (
            b'{"specversion": "1.0"}',
            "invalid envelope: (root): Value error, missing required attribute(s): id, source",
        ),
    ],
)
def test_malformed_bodies_say_what_is_wrong(raw, message):
    with pytest.raises(MalformedEvent, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_event(raw)


def test_envelope_rules():
    base = train_requested().model_dump(mode="json")
    for change, message in [
        ({"id": "42"}, "id: Value error, id must be a UUID, not '42'"),
        ({"specversion": "0.3"}, "specversion: Input should be '1.0'"),
        ({"type": "train.requested"}, "type: String should match pattern"),
        ({"time": "2026-11-26T12:00:00"}, "time: Input should have timezone info"),
        ({"datacontenttype": "application/xml"}, "datacontenttype: Input should be 'application/json'"),
    ]:
        with pytest.raises(MalformedEvent, match=message):
            parse_event(json.dumps(base | change))


def test_unknown_type_unsupported_version_and_bad_payload_are_malformed_input():
    base = train_requested().model_dump(mode="json")
    with pytest.raises(MalformedEvent, match=r"unknown event type 'maestrale.train.exploded'.*known types: "):
        parse_event(json.dumps(base | {"type": "maestrale.train.exploded"}))
    v2 = base | {"dataschema": "urn:maestrale:event:train.requested:v2"}
    with pytest.raises(
        MalformedEvent, match="unsupported dataschema .*v2.*reads urn:maestrale:event:train.requested:v1"
    ):
        parse_event(json.dumps(v2))
    bad = json.loads(json.dumps(base))
    del bad["data"]["idempotency_key"]
    bad["data"]["parent_version"] = 0
    with pytest.raises(MalformedEvent) as info:
        parse_event(json.dumps(bad))
    assert isinstance(info.value, InvalidInput)
    assert "invalid maestrale.train.requested payload" in info.value.message
    assert "idempotency_key: Field required" in info.value.message
    assert "parent_version: Input should be greater than or equal to 1" in info.value.message


def test_nested_payload_errors_carry_the_field_path():
    rec = PredictionRecord(record_id="r", entity="p", issued_at=T0, target_time=T0, prediction=1.0)
    ev = CloudEvent.create(PredictionLogged(model="pv", version=1, records=[rec, rec]))
    doc = ev.model_dump(mode="json")
    doc["data"]["records"][1]["issued_at"] = "2026-11-26T00:00:00"
    with pytest.raises(MalformedEvent, match=r"records\.1\.issued_at: Input should have timezone info"):
        parse_event(json.dumps(doc))


def test_registry_outbox_events_match_their_schemas(sqlite_registry, regression_data):
    from sklearn.linear_model import Ridge

    X, y = regression_data
    reg = sqlite_registry
    mv = reg.register("pv-p50", Ridge().fit(X, y), metrics={"nmae": 0.06}, tags={"site": "p50"})
    reg.register("pv-p50", Ridge(alpha=2).fit(X, y), parent_version=1, reason="drift")
    reg.set_alias("pv-p50", "champion", mv.version)
    reg.set_alias("pv-p50", "challenger", 2)
    reg.delete_alias("pv-p50", "challenger")
    reg.archive("pv-p50:2")
    reg.archive("pv-p50")
    reg.unarchive("pv-p50:2", reason="compare")
    reg.unarchive("pv-p50")
    rows = reg._meta.pending_events()
    types = [r["type"] for r in rows]
    assert set(types) == {
        "maestrale.model.registered",
        "maestrale.model.alias_set",
        "maestrale.model.promoted",
        "maestrale.model.alias_deleted",
        "maestrale.model.version_archived",
        "maestrale.model.archived",
        "maestrale.model.version_unarchived",
        "maestrale.model.unarchived",
    }
    for row in rows:
        ev = CloudEvent.model_validate(row)
        payload = validate_payload(ev)
        assert type(payload) is EVENT_TYPES[row["type"]]
        assert parse_event(ev.to_json()) == ev


def test_every_type_is_registered_under_its_own_name_and_documented():
    for type_, cls in EVENT_TYPES.items():
        assert cls.type == type_ and cls.dataschema().endswith(":v1")
        assert cls.__doc__
    text = DOC.read_text()
    generated = text.split("<!-- schemas:start -->\n", 1)[1].split("<!-- schemas:end -->", 1)[0]
    assert generated == markdown(), (
        "docs/events.md is stale: python -m maestrale.bus.schemas --write docs/events.md"
    )


def test_schema_cli_prints_markdown():
    out = subprocess.run(
        [sys.executable, "-m", "maestrale.bus.schemas", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == markdown()


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("maestrale.model.*", "maestrale.model.promoted", True),
        ("maestrale.model.*", "maestrale.model", False),
        ("maestrale.#", "maestrale.model.promoted", True),
        ("maestrale.#", "maestrale", True),
        ("#", "anything.at.all", True),
        ("maestrale.*.logged", "maestrale.prediction.logged", True),
        ("maestrale.*.logged", "maestrale.train.requested", False),
        ("maestrale.train.requested", "maestrale.train.requested", True),
    ],
)
def test_topic_matching_follows_amqp(pattern, key, matches):
    assert topic_matches(pattern, key) is matches


def test_retry_policy_repeats_its_last_delay():
    p = RetryPolicy(max_attempts=6, delays=(1, 5, 30))
    assert [p.delay(k) for k in range(1, 6)] == [1, 5, 30, 30, 30]
    with pytest.raises(InvalidInput):
        RetryPolicy(max_attempts=0)


def test_importing_maestrale_and_the_bus_does_not_load_pika():
    code = "import sys, maestrale, maestrale.bus; print('pika' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
