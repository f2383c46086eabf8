"""The monitor's ingest fast path: a `prediction.logged` body decoded by msgspec and checked by column.

`decode_prediction_event` turns a message body straight into an event whose `records` are a
`PredictionColumns`: slotted structs decoded in one C pass, with each record's `features` kept as
its JSON text (features are stored as JSON, so they are neither decoded nor re-encoded). The store's
`checked_predictions` then checks the batch a column at a time: distinct times parsed once, ids
checked as one joined string, one set for duplicates. A record that fails a column check goes to the
per-record rules (`ingest.RecordChecker`), which name the reason: both paths reject the same records
with the same words. A body the fast decoder does not take whole (a wrong type anywhere, a time as
a number, a `NaN` literal, a number too large for a float) returns None, and the reference parser
(`parse_event`, pydantic) handles it record by record as before.

>>> event = decode_prediction_event(body)  # doctest: +SKIP
>>> rows, rejected = event.data["records"].checked()  # doctest: +SKIP

Without msgspec installed (`pip install 'maestrale[rabbitmq]'` brings it) every body takes the
reference path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, overload

import msgspec
import numpy as np
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from maestrale.bus.events import _WIRE, CloudEvent
from maestrale.bus.schemas import PredictionLogged
from maestrale.monitoring._bulk import _json_text
from maestrale.monitoring.ingest import RecordChecker, Rejection, _prediction_adapter, _reason, flag_text

_NULL, _EMPTY = msgspec.Raw(b"null"), msgspec.Raw(b"{}")


class _Record(msgspec.Struct):
    """A prediction record as the fast path takes it (unknown fields ignored, as pydantic does)."""

    record_id: str
    entity: str
    issued_at: str  # parsed once per distinct value, by pydantic (the same rules as the reference)
    target_time: str
    prediction: float | list[float] | str
    features: msgspec.Raw = _EMPTY  # (plain defaults: a default_factory doubles the decoding time)
    horizon: msgspec.Raw = _NULL  # rare: the per-record rules check it

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON values, for the per-record rules."""
        out = {f: getattr(self, f) for f in ("record_id", "entity", "issued_at", "target_time", "prediction")}
        out["features"] = msgspec.json.decode(self.features)
        if bytes(self.horizon) != b"null":
            out["horizon"] = msgspec.json.decode(self.horizon)
        return out


class _Batch(msgspec.Struct):
    model: str
    version: int
    records: list[_Record]


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    """The whole body in one pass: the CloudEvents attributes (pydantic checks them), then `data`."""

    data: _Batch
    specversion: Any = msgspec.UNSET
    id: Any = msgspec.UNSET
    source: Any = msgspec.UNSET
    type: Any = msgspec.UNSET
    time: Any = msgspec.UNSET
    subject: Any = msgspec.UNSET
    datacontenttype: Any = msgspec.UNSET
    dataschema: Any = msgspec.UNSET


_WIRE_DECODER = msgspec.json.Decoder(_Wire)
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])  # with extension attributes: two passes
_BATCH = msgspec.json.Decoder(_Batch)
_ATTRS = tuple(f for f in _Wire.__struct_fields__ if f != "data")
_PREDICTED = PredictionLogged.type


@cache
def _aware() -> TypeAdapter[AwareDatetime]:
    return TypeAdapter(AwareDatetime)


def decode_prediction_event(body: bytes) -> CloudEvent | None:
    """The event of a clean `prediction.logged` body with its records as `PredictionColumns`, else None.

    None means "not for the fast path" (another type, a record the fast decoder refuses, an invalid
    envelope): the caller parses the body the reference way, which names what is wrong.
    """
    try:
        wire = _WIRE_DECODER.decode(body)
        batch = wire.data
        attrs = {f: v for f in _ATTRS if (v := getattr(wire, f)) is not msgspec.UNSET}
    except msgspec.DecodeError:  # msgspec.ValidationError is one
        try:  # another type, or extension attributes (kept, as pydantic keeps extras)
            top = _TOP.decode(body)
            data = top.pop("data")
            attrs = {k: msgspec.json.decode(v) for k, v in top.items()}
            if attrs.get("type") != _PREDICTED:
                return None
            batch = _BATCH.decode(data)
        except (msgspec.DecodeError, KeyError):
            return None
    if attrs.get("type") != _PREDICTED or _too_large(body):
        return None
    if batch.version < 1 or not batch.records:
        return None
    try:
        event = CloudEvent.model_validate({**attrs, "data": {}}, context=_WIRE)
    except ValidationError:
        return None
    if event.dataschema != PredictionLogged.dataschema():
        return None
    event.data = {"model": batch.model, "version": batch.version, "records": PredictionColumns(batch.records)}
    return event


def _too_large(body: bytes) -> bool:
    """True if a number in `body` may not fit a float (the reference stores such a feature as null).

    msgspec refuses such numbers where it decodes them, but keeps features as raw text: this scan
    (numpy, one pass) sends a body with a number of a positive exponent of two digits or more, or a
    run of 64+ digits, to the reference path. Real features rarely look like that; it only costs
    speed if so. (Digits and an e inside strings, as in UUIDs, are not numbers: not counted.)
    """
    a = np.frombuffer(body, np.uint8)
    digit = (a - np.uint8(48)) < 10
    e = np.flatnonzero((a[1:-1] | np.uint8(32)) == np.uint8(101)) + 1  # every e or E (keys have many)
    e = e[digit[e - 1] & (a[e + 1] != np.uint8(45))]  # after a digit, not before a minus sign
    if any(_big_exponent(body, int(p)) for p in e):
        return True
    n = len(digit) // 64 * 64  # 127 digits in a row fill at least one aligned block of 64
    return bool(n and digit[:n].reshape(-1, 64).all(axis=1).any())


def _big_exponent(body: bytes, e: int) -> bool:
    """Whether the e at `e` ends the mantissa of a JSON number whose exponent is +10 or more."""
    start = e
    while start > 0 and body[start - 1] in b"0123456789.":
        start -= 1
    if start > 0 and body[start - 1] == 45:  # a minus sign
        start -= 1
    if start > 0 and body[start - 1] not in b":,[ \t\r\n":  # not a number: inside a string
        return False
    tail = body[e + 1 : e + 8].lstrip(b"+").lstrip(b"0")
    return len(tail) >= 2 and tail[:2].isdigit()


class PredictionColumns(Sequence[dict[str, Any]]):
    """The records of one decoded batch; `checked()` is what `ingest.checked_predictions` returns.

    A Sequence of record dicts as well, for any code that reads records one by one.
    """

    def __init__(self, records: list[_Record]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [r.as_dict() for r in self.records[i]]
        return self.records[i].as_dict()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (r.as_dict() for r in self.records)

    def checked(self) -> tuple[list[tuple[Any, ...]], list[Rejection]]:
        """(accepted tuples of `ingest.CHECKED_FIELDS` with `features` as JSON text, rejections)."""
        recs = self.records
        ids = [r.record_id for r in recs]
        entities = [r.entity for r in recs]
        features = [str(r.features, "utf-8") for r in recs]
        times = _times({r.issued_at for r in recs} | {r.target_time for r in recs})
        # (issued, target) strings -> (issued UTC, target UTC, horizon in s); None: a bad time
        spans: dict[tuple[str, str], tuple[Any, ...] | None] = {}
        for key in {(r.issued_at, r.target_time) for r in recs}:
            issued, target = times[key[0]], times[key[1]]
            spans[key] = None if issued is None or target is None else (
                issued, target, round((target - issued).total_seconds())
            )  # fmt: skip
        span = [spans[(r.issued_at, r.target_time)] for r in recs]
        flagged = flag_text(ids) | flag_text(entities)
        flagged.update(
            i for i, (r, f, s) in enumerate(zip(recs, features, span, strict=True))
            # the per-record rules see: a label or quantiles, an empty id, a horizon, features that
            # are not a JSON object, a time the reference refuses
            if type(r.prediction) is not float or not r.record_id or r.horizon is not _NULL
            or f[:1] != "{" or s is None
        )  # fmt: skip
        if not flagged and len(set(ids)) == len(ids):
            return [
                (rid, ent, *s, r.prediction, None, f)  # type: ignore[misc]
                for rid, ent, s, r, f in zip(ids, entities, span, recs, features, strict=True)
            ], []
        checker = RecordChecker()
        adapter = _prediction_adapter()
        for i, (r, s, f) in enumerate(zip(recs, span, features, strict=True)):
            if i in flagged:
                try:
                    rec = adapter.validate_python(r.as_dict())
                except ValidationError as exc:
                    checker.rejected.append(Rejection(i, _reason(exc), r.record_id))
                    continue
                before = len(checker.out)
                checker.check(i, rec)
                if len(checker.out) > before:  # accepted (e.g. a horizon that matches): features as text
                    *head, parsed = checker.out[-1]
                    checker.out[-1] = (*head, _json_text(parsed))
            elif r.record_id in checker.seen:
                checker.rejected.append(
                    Rejection(i, "record_id repeats an earlier record of this batch", r.record_id)
                )
            else:
                checker.seen.add(r.record_id)
                checker.out.append((r.record_id, r.entity, *s, r.prediction, None, f))  # type: ignore[misc]
        return checker.out, checker.rejected


def _times(strings: set[str]) -> dict[str, datetime | None]:
    """Each distinct time string in UTC, or None when the reference would reject it."""
    parse = _aware().validate_python
    out: dict[str, datetime | None] = {}
    for s in strings:
        try:
            out[s] = parse(s).astimezone(UTC)
        except ValidationError:
            out[s] = None
    return out
