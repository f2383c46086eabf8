"""The CloudEvents 1.0 envelope (JSON, structured mode) every Maestrale event travels in.

>>> from maestrale.bus.events import CloudEvent, parse_event
>>> from maestrale.bus.schemas import TrainRequested
>>> ev = CloudEvent.create(
...     TrainRequested(request_id="r1", idempotency_key="pv-p50-2026-11", spec={"name": "pv-p50"}),
...     subject="pv-p50",
... )
>>> parse_event(ev.to_json()).payload.idempotency_key
'pv-p50-2026-11'
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from maestrale.bus.schemas import EVENT_TYPES, EventPayload, schema_urn
from maestrale.errors import InvalidInput

TYPE_PATTERN = r"^maestrale\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
CONTENT_TYPE = "application/cloudevents+json"  # AMQP content-type of structured-mode CloudEvents


class MalformedEvent(InvalidInput):
    """A message that is not a valid Maestrale event: bad JSON, an unknown type or an invalid payload.

    Retrying cannot fix it, so consumers dead-letter it at once with this message as the reason.
    """

    code = "malformed_event"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope; `data` is the JSON payload of `type` (see `maestrale.bus.schemas`).

    Extension attributes (e.g. `traceparent`) are kept as extra fields.
    """

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), description="UUID, unique per event.")
    source: str = Field(min_length=1, description="URI-reference of the producer, e.g. maestrale/registry.")
    type: str = Field(pattern=TYPE_PATTERN, description="maestrale.<noun>.<verb>; the AMQP routing key.")
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = Field(default=None, description="The model name, when the event is about one.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, description="urn:maestrale:event:<noun>.<verb>:v<N>")
    data: dict[str, Any] = Field(default_factory=dict)
    _payload: EventPayload | None = PrivateAttr(default=None)

    @field_validator("id")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuid.UUID(v))
        except ValueError:
            raise ValueError(f"id must be a UUID, not {v!r}") from None

    @model_validator(mode="after")
    def _default_schema(self) -> CloudEvent:
        # Plain publishers may omit dataschema: v1 is implied.
        if self.dataschema is None:
            self.dataschema = schema_urn(self.type)
        return self

    @classmethod
    def create(
        cls,
        payload: EventPayload,
        *,
        subject: str | None = None,
        source: str = "maestrale",
        id: str | None = None,
        time: datetime | None = None,
    ) -> CloudEvent:
        """Wrap a typed payload: `CloudEvent.create(ModelPromoted(...), subject="pv-p50")`."""
        event = cls(
            source=source,
            type=payload.type,
            subject=subject,
            dataschema=payload.dataschema(),
            data=payload.model_dump(mode="json"),
            **({"id": id} if id else {}),
            **({"time": time} if time else {}),
        )
        event._payload = payload
        return event

    @property
    def payload(self) -> EventPayload:
        """`data` validated as its type's payload model (validated once, then cached)."""
        if self._payload is None:
            self._payload = validate_payload(self)
        return self._payload

    def to_json(self) -> bytes:
        """The structured-mode JSON body, as published."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        """The envelope only (the payload is checked by `parse_event` or on first `.payload`)."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise MalformedEvent(_describe(exc, "envelope", raw)) from None


def validate_payload(event: CloudEvent) -> EventPayload:
    """Check `event.data` against the schema of `event.type`; MalformedEvent names the bad field."""
    model = EVENT_TYPES.get(event.type)
    if model is None:
        known = ", ".join(sorted(EVENT_TYPES))
        raise MalformedEvent(f"unknown event type {event.type!r} (event {event.id}); known types: {known}")
    if event.dataschema != model.dataschema():
        raise MalformedEvent(
            f"unsupported dataschema {event.dataschema!r} for {event.type} (event {event.id}); "
            f"this consumer reads {model.dataschema()}"
        )
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise MalformedEvent(_describe(exc, f"{event.type} payload (event {event.id})", None)) from None


def parse_event(raw: bytes | str) -> CloudEvent:
    """Parse and fully validate a message body: envelope, known type, payload.

    >>> parse_event(b'{"oops"')  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    maestrale.bus.events.MalformedEvent: not JSON: ...
    """
    event = CloudEvent.from_json(raw)
    event._payload = validate_payload(event)
    return event


def _describe(exc: ValidationError, what: str, raw: bytes | str | None) -> str:
    errors = exc.errors(include_url=False)
    if raw is not None and errors and errors[0]["type"] in ("json_invalid", "json_type"):
        snippet = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        return f"not JSON: {errors[0]['msg']} (body starts {snippet!r})"
    lines = []
    for err in errors[:5]:
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{path}: {err['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"invalid {what}: " + "; ".join(lines) + more


def event_summary(body: bytes) -> dict[str, Any]:
    """Best-effort `type`/`id`/`subject` of a body that may be malformed (for DLQ listings)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"type": None, "id": None, "subject": None}
    if not isinstance(doc, dict):
        return {"type": None, "id": None, "subject": None}
    return {k: doc.get(k) for k in ("type", "id", "subject")}
