"""Event parsing never fails with anything but `MalformedEvent`, whatever arrives on the bus.

Properties with a fixed seed: arbitrary bytes, arbitrary JSON documents and envelopes with every
attribute replaced by arbitrary JSON, for each event type. `event_summary` (DLQ listings) never raises
at all. A body nested 100,000 levels deep used to raise RecursionError from `event_summary`.
"""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from maestrale.bus.events import MalformedEvent, event_summary, parse_event
from maestrale.bus.schemas import EVENT_TYPES

PROPERTY = settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DEEP = b"[" * 100_000 + b"]" * 100_000
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
ENVELOPE = {
    "specversion": "1.0",
    "id": "0b6b4bd8-8fbd-4b8f-8f56-3a1b2c3d4e5f",
    "source": "tests",
    "time": "2026-11-26T12:00:00Z",
    "data": {},
}
ATTRIBUTES = [*ENVELOPE, "type", "subject", "dataschema", "datacontenttype", "traceparent"]


def _parses_or_is_malformed(raw: bytes | str) -> None:
    with contextlib.suppress(MalformedEvent):
        parse_event(raw)
    summary = event_summary(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    assert set(summary) == {"type", "id", "subject"}


@PROPERTY
@given(st.binary(max_size=300))
@example(DEEP)
@example(b'{"type": "maestrale.model.registered", "data": ' * 2000)
@example(b"\xff\xfe{}")
def test_arbitrary_bytes(raw: bytes):
    _parses_or_is_malformed(raw)


@PROPERTY
@given(json_values)
def test_arbitrary_json(doc: object):
    _parses_or_is_malformed(json.dumps(doc))


@PROPERTY
@given(
    st.sampled_from([*sorted(EVENT_TYPES), "maestrale.no.such", "not-a-type"]),
    st.dictionaries(st.sampled_from(ATTRIBUTES), json_values, max_size=4),
)
def test_envelopes_with_arbitrary_attributes(event_type: str, overrides: dict):
    _parses_or_is_malformed(json.dumps({**ENVELOPE, "type": event_type, **overrides}))
