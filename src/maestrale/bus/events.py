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

import functools
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from maestrale.bus.schemas import EVENT_TYPES, EventPayload, schema_urn
from maestrale.errors import InvalidInput

TYPE_PATTERN = r"^maestrale\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
CONTENT_TYPE = "application/cloudevents+json"  # AMQP content-type of structured-mode CloudEvents
_REQUIRED = ("specversion", "id", "source", "type", "time", "data")
_WIRE = "wire"


class MalformedEvent(InvalidInput):
    """A message that is not a valid Maestrale event: bad JSON, an unknown type or an invalid payload.

    Retrying cannot fix it, so consumers dead-letter it at once with this message as the reason.
    """

    code = "malformed_event"


class _Envelope(BaseModel):
    """The CloudEvents attributes, without `data` (shared by `CloudEvent` and the typed parsers)."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), description="UUID, unique per event.")
    source: str = Field(min_length=1, description="URI-reference of the producer, e.g. maestrale/registry.")
    type: str = Field(pattern=TYPE_PATTERN, description="maestrale.<noun>.<verb>; the AMQP routing key.")
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = Field(default=None, description="The model name, when the event is about one.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, description="urn:maestrale:event:<noun>.<verb>:v<N>")

    @field_validator("id")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuid.UUID(v))
        except ValueError:
            raise ValueError(f"id must be a UUID, not {v!r}") from None

    @model_validator(mode="after")
    def _default_schema(self) -> Any:
        # Plain publishers may omit dataschema: v1 is implied.
        if self.dataschema is None:
            self.dataschema = schema_urn(self.type)
        return self


class CloudEvent(_Envelope):
    """A CloudEvents 1.0 envelope; `data` is the JSON payload of `type` (see `maestrale.bus.schemas`).

    Extension attributes (e.g. `traceparent`) are kept as extra fields. Events made by `create` or
    `parse_event` hold their typed payload and build the `data` dict only when it is read: a
    1,000-record prediction batch goes from model to JSON (and back) without that detour.
    """

    data: dict[str, Any] = Field(default_factory=dict)
    _payload: EventPayload | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _required_on_the_wire(cls, value: Any, info: ValidationInfo) -> Any:
        # Defaults make building events easy; a received event must carry them all the same. (Not on
        # _Envelope: a "before" validator would make pydantic build the whole JSON as dicts first.)
        if info.context == _WIRE and isinstance(value, dict):
            missing = [k for k in _REQUIRED if k not in value]
            if missing:
                raise ValueError(f"missing required attribute(s): {', '.join(missing)}")
        return value

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
        # Only what the caller gave: the envelope's defaults make the rest (one place for them).
        given: dict[str, Any] = {}
        if id:
            given["id"] = id
        if time:
            given["time"] = time
        event = cls(
            source=source, type=payload.type, subject=subject, dataschema=payload.dataschema(), **given
        )
        return event._hold(payload)

    def _hold(self, payload: EventPayload) -> CloudEvent:
        self._payload = payload
        del self.__dict__["data"]  # built from the payload on first access (see __getattr__)
        return self

    def __getattr__(self, name: str) -> Any:
        # Reached only when `data` is not materialised yet (normal lookup found nothing).
        if name == "data":
            payload = self.__pydantic_private__["_payload"] if self.__pydantic_private__ else None
            if payload is not None:
                data = self.__dict__["data"] = payload.model_dump(mode="json")
                return data
        # pydantic defines BaseModel.__getattr__ outside TYPE_CHECKING only, so the checker sees none
        return super().__getattr__(name)  # type: ignore[misc]

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """As pydantic's, with `data` built first if needed."""
        _ = self.data
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        """As pydantic's, with `data` built first if needed."""
        _ = self.data
        return super().model_dump_json(**kwargs)

    def __eq__(self, other: object) -> bool:
        # The cached payload is not part of the event's identity.
        return isinstance(other, CloudEvent) and self.model_dump() == other.model_dump()

    # unhashable, as Python makes any class that defines __eq__; typeshed types __hash__ as a method only
    __hash__ = None  # type: ignore[assignment]

    @property
    def payload(self) -> EventPayload:
        """`data` validated as its type's payload model (validated once, then cached)."""
        if self._payload is None:
            self._payload = validate_payload(self)
        return self._payload

    def to_json(self) -> bytes:
        """The structured-mode JSON body, as published."""
        if "data" in self.__dict__ or self._payload is None:
            return super().model_dump_json(exclude_none=True).encode()
        # Straight from the payload model to JSON (pydantic-core), spliced in as the last member.
        head = super().model_dump_json(exclude_none=True, exclude={"data"}).encode()
        return b'%s,"data":%s}' % (head[:-1], self._payload.model_dump_json().encode())

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        """The envelope only (the payload is checked by `parse_event` or on first `.payload`)."""
        try:
            return cls.model_validate_json(raw, context=_WIRE)
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
    try:
        # One pass from JSON to the typed payload (a discriminated union over the event types).
        typed = _typed_events().validate_json(raw, context=_WIRE)
    except ValidationError:
        # Slow path only for bad messages: the two-step parse names exactly what is wrong.
        event = CloudEvent.from_json(raw)
        event._payload = validate_payload(event)
        return event
    attrs = {k: typed.__dict__[k] for k in _Envelope.model_fields}
    event = CloudEvent.model_construct(**attrs, **(typed.model_extra or {}))
    return event._hold(typed.data)


_SpecVersion: TypeAlias = Literal["1.0"]


@functools.cache
def _typed_events() -> TypeAdapter[Any]:
    envelopes = [_typed_envelope(type_, cls) for type_, cls in EVENT_TYPES.items()]
    # A union of models built at run time: a type only pydantic sees, so `Any` to the checker.
    union: Any = Union[tuple(envelopes)]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


def _typed_envelope(type_: str, payload: type[EventPayload]) -> type[_Envelope]:
    """The envelope of one event type, its `type` a literal (the union's discriminator)."""
    # Literals of values known only at run time: pydantic reads them, a static checker cannot.
    type_literal: Any = Literal[type_]
    schema_literal: Any = Literal[payload.dataschema()]
    return create_model(
        f"{payload.__name__}Event",
        __base__=_Envelope,
        # required here, as on the wire (the defaults of _Envelope are for building events)
        specversion=(_SpecVersion, ...),
        id=(str, ...),
        source=(str, Field(min_length=1)),
        time=(AwareDatetime, ...),
        type=(type_literal, ...),
        dataschema=(schema_literal | None, None),
        data=(payload, ...),
    )


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
    except (ValueError, RecursionError):  # RecursionError: a body nested thousands of levels deep
        return {"type": None, "id": None, "subject": None}
    if not isinstance(doc, dict):
        return {"type": None, "id": None, "subject": None}
    return {k: doc.get(k) for k in ("type", "id", "subject")}
