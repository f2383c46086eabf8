"""Validate batches of prediction and actual records, record by record: bad ones are named, good ones kept.

A batch is never all-or-nothing: one record with a naive timestamp or a NaN forecast is reported back
(its index, record id and the reason) and every valid record of the same batch is stored.

>>> good, bad = validate_predictions([
...     {"record_id": "r1", "entity": "p50", "issued_at": "2012-06-01T12:00Z",
...      "target_time": "2012-06-02T10:00Z", "features": {"ghi": 710.0}, "prediction": 2.1},
...     {"record_id": "r2", "entity": "p50", "issued_at": "2012-06-01T12:00",
...      "target_time": "2012-06-02T11:00Z", "prediction": 2.3},
... ])
>>> len(good), bad[0].record_id, "time zone" in bad[0].reason
(1, 'r2', True)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from maestrale.bus.schemas import ActualRecord, PredictionRecord

#: Largest batch one call or one event may carry: bigger ones are split by the client helpers.
MAX_BATCH = 50_000


@dataclass(frozen=True, slots=True)
class Rejection:
    """One record that was not stored: its position in the batch, its id if it had one, and why."""

    index: int
    reason: str
    record_id: str | None = None


@dataclass(slots=True)
class IngestResult:
    """What happened to a batch: `stored` new records, `duplicates` already stored, `rejected` records."""

    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def add(self, other: IngestResult) -> IngestResult:
        """Sum of two results (rejection indexes are kept as they are)."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON form, as the REST API returns it."""
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": [
                {"index": r.index, "record_id": r.record_id, "reason": r.reason} for r in self.rejected
            ],
        }


@cache
def _prediction_adapter() -> TypeAdapter[PredictionRecord]:
    return TypeAdapter(PredictionRecord)


@cache
def _prediction_list_adapter() -> TypeAdapter[list[PredictionRecord]]:
    return TypeAdapter(list[PredictionRecord])


@cache
def _actual_adapter() -> TypeAdapter[ActualRecord]:
    return TypeAdapter(ActualRecord)


@cache
def _actual_list_adapter() -> TypeAdapter[list[ActualRecord]]:
    return TypeAdapter(list[ActualRecord])


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "record"
        msg = err["msg"]
        if err["type"] == "timezone_aware":
            msg = "needs a time zone: write e.g. 2012-06-01T12:00Z or +02:00"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def _clean_features(features: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN (PostgreSQL refuses it): a missing input is stored as null.
    try:
        # Fast path (the usual all-numeric, all-finite inputs): a sum of numbers is finite only if
        # each one is; strings, None or an overflow fall through to the item-by-item copy.
        if math.isfinite(sum(features.values())):
            return features
    except (TypeError, OverflowError):
        pass
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in features.items()}


def _point(prediction: float | list[float] | str) -> tuple[float | None, Any]:
    """(point forecast, output to keep): the middle quantile stands for a quantile forecast."""
    if isinstance(prediction, str):
        return None, prediction
    if isinstance(prediction, list):
        if not prediction:
            raise ValueError("prediction is an empty list: send a number or the quantiles")
        return float(prediction[len(prediction) // 2]), prediction
    return float(prediction), None


def validate_predictions(
    records: Sequence[Any], *, logged_at: datetime | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Rows ready for the `predictions` table (without model/version) and the rejected records.

    `records` are dicts (REST, events) or `PredictionRecord`s. Checks beyond the types: the target
    time and issue time are time-zone aware, the point forecast is finite, `horizon` (if given)
    matches `target_time - issued_at` within a second, and record ids are unique within the batch.
    """
    logged_at = logged_at or datetime.now(UTC)
    checked, rejected = checked_predictions(records)
    rows = [
        {
            "record_id": record_id,
            "entity": entity,
            "issued_at": issued_at,
            "target_time": target_time,
            "horizon_s": horizon_s,
            "prediction": point,
            "output": output,
            "features": dict(features),
            "logged_at": logged_at,
        }
        for record_id, entity, issued_at, target_time, horizon_s, point, output, features in checked
    ]
    return rows, rejected


#: The fields of a checked prediction, in the order `checked_predictions` gives them.
CHECKED_FIELDS = (
    "record_id", "entity", "issued_at", "target_time", "horizon_s", "prediction", "output", "features"
)  # fmt: skip


#: Longest record id and entity name the `predictions` and `actuals` tables hold (String(128)).
MAX_TEXT = 128


def text_problem(value: str, name: str) -> str | None:
    """Why PostgreSQL would refuse `value` as a key column of the monitor's tables, or None.

    >>> text_problem("p" * 200, "entity")
    'entity is 200 characters long: the monitor keeps at most 128 (use a shorter id)'
    """
    if len(value) > MAX_TEXT:
        return (
            f"{name} is {len(value)} characters long: the monitor keeps at most {MAX_TEXT} (use a shorter id)"
        )
    if "\x00" in value:
        return f"{name} contains a NUL character (\\u0000), which SQL text cannot hold: remove it"
    try:
        value.encode()
    except UnicodeEncodeError:
        return f"{name} is not valid Unicode (a lone surrogate such as \\ud800): send UTF-8 text"
    return None


def flag_text(values: list[str]) -> set[int]:
    """Indexes of the values `text_problem` refuses, checked as one joined string first.

    >>> flag_text(["ok", "a" * 129])
    {1}
    """
    joined = "".join(values)
    try:
        joined.encode()
        clean = "\x00" not in joined and max(map(len, values), default=0) <= MAX_TEXT
    except UnicodeEncodeError:
        clean = False
    if clean:
        return set()
    return {i for i, v in enumerate(values) if text_problem(v, "value") is not None}


def checked_predictions(records: Sequence[Any]) -> tuple[list[tuple[Any, ...]], list[Rejection]]:
    """`validate_predictions` as tuples of `CHECKED_FIELDS` (times in UTC), for the store's bulk path."""
    columns = getattr(records, "checked", None)
    if columns is not None:  # a batch decoded column-wise from an event (`monitoring._columns`)
        return columns()
    typed: Sequence[Any] = records
    if not all(isinstance(r, PredictionRecord) for r in records):
        # One call for the whole batch; a batch with a bad record is redone record by record below.
        with contextlib.suppress(ValidationError):
            typed = _prediction_list_adapter().validate_python(records)
    adapter = _prediction_adapter()
    checker = RecordChecker()
    if all(isinstance(r, PredictionRecord) for r in typed):
        # ids and entities checked as two joined strings, not two calls per record
        checker.texts_clean = not (
            flag_text([r.record_id for r in typed]) or flag_text([r.entity for r in typed])
        )
    for i, raw in enumerate(typed):
        # Typed records (the monitor's consumer parsed the event into them) were validated already.
        if isinstance(raw, PredictionRecord):
            checker.check(i, raw)
            continue
        try:
            rec = adapter.validate_python(raw)
        except ValidationError as exc:
            rid = raw.get("record_id") if isinstance(raw, dict) else getattr(raw, "record_id", None)
            checker.rejected.append(Rejection(i, _reason(exc), rid if isinstance(rid, str) else None))
            continue
        checker.check(i, rec)
    return checker.out, checker.rejected


class RecordChecker:
    """The per-record rules beyond the types, in batch order: accepted tuples in `out`, others `rejected`.

    Shared by `checked_predictions` and the column-wise path (`monitoring._columns`), so both name the
    same records with the same reasons.

    >>> c = RecordChecker()
    >>> c.check(0, _prediction_adapter().validate_python({"record_id": "r", "entity": "e",
    ...     "issued_at": "2026-01-01T00:00Z", "target_time": "2026-01-01T01:00Z", "prediction": 1.0}))
    >>> c.out[0][4], c.rejected
    (3600, [])
    """

    __slots__ = ("in_utc", "out", "rejected", "seen", "texts_clean")

    def __init__(self) -> None:
        self.out: list[tuple[Any, ...]] = []
        self.rejected: list[Rejection] = []
        self.seen: set[str] = set()
        # Records of a batch share their issue and target times: each distinct time is converted to
        # UTC once (astimezone on pydantic's parsed times is the costliest step of the loop otherwise).
        self.in_utc: dict[datetime, datetime] = {}
        self.texts_clean = False  # True: the caller checked every id and entity (`flag_text`)

    def check(self, i: int, rec: PredictionRecord) -> None:
        """Accept or reject record `i` of the batch (already valid against `PredictionRecord`)."""
        record_id = rec.record_id
        problem = None
        if not self.texts_clean:
            problem = text_problem(record_id, "record_id") or text_problem(rec.entity, "entity")
        if problem is not None:
            self.rejected.append(Rejection(i, problem, record_id if "record_id" not in problem else None))
            return
        if record_id in self.seen:
            self.rejected.append(Rejection(i, "record_id repeats an earlier record of this batch", record_id))
            return
        prediction = rec.prediction
        point: float | None
        if type(prediction) is float:  # the common case, as `_point` would return it
            point, output = prediction, None
        else:
            try:
                point, output = _point(prediction)
            except ValueError as exc:
                self.rejected.append(Rejection(i, str(exc), record_id))
                return
        if point is not None and not math.isfinite(point):
            self.rejected.append(Rejection(i, f"prediction is {point}: send a finite number", record_id))
            return
        issued_at, target_time = rec.issued_at, rec.target_time
        lead = (target_time - issued_at).total_seconds()
        if rec.horizon is not None and abs(rec.horizon.total_seconds() - lead) > 1:
            self.rejected.append(
                Rejection(
                    i,
                    f"horizon {rec.horizon} disagrees with target_time - issued_at = {lead:.0f} s: "
                    "send one that matches, or leave horizon out",
                    record_id,
                )
            )
            return
        self.seen.add(record_id)
        in_utc = self.in_utc
        issued_utc = in_utc.get(issued_at)
        if issued_utc is None:
            issued_utc = in_utc[issued_at] = issued_at.astimezone(UTC)
        target_utc = in_utc.get(target_time)
        if target_utc is None:
            target_utc = in_utc[target_time] = target_time.astimezone(UTC)
        self.out.append(
            (
                record_id, rec.entity, issued_utc, target_utc, round(lead), point, output,
                _clean_features(rec.features),
            )
        )  # fmt: skip


def validate_actuals(
    records: Iterable[Any], *, received_at: datetime | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Rows for the `actuals` table and the rejected records (a later duplicate in the batch wins)."""
    received_at = received_at or datetime.now(UTC)
    adapter = _actual_adapter()
    by_key: dict[tuple[str, datetime], dict[str, Any]] = {}
    rejected: list[Rejection] = []
    typed: Sequence[Any] = records if isinstance(records, Sequence) else list(records)
    if not all(isinstance(r, ActualRecord) for r in typed):
        # One call for the whole batch; a batch with a bad record is redone record by record below.
        with contextlib.suppress(ValidationError):
            typed = _actual_list_adapter().validate_python(typed)
    in_utc: dict[datetime, datetime] = {}
    for i, raw in enumerate(typed):
        try:
            rec = raw if isinstance(raw, ActualRecord) else adapter.validate_python(raw)
        except ValidationError as exc:
            rejected.append(Rejection(i, _reason(exc)))
            continue
        problem = text_problem(rec.entity, "entity")
        if problem is not None:
            rejected.append(Rejection(i, problem))
            continue
        if not math.isfinite(rec.value):
            rejected.append(Rejection(i, f"value is {rec.value}: leave a missing actual out of the batch"))
            continue
        when = in_utc.get(rec.target_time)
        if when is None:
            when = in_utc[rec.target_time] = _utc(rec.target_time)
        by_key[(rec.entity, when)] = {
            "entity": rec.entity,
            "target_time": when,
            "value": float(rec.value),
            "received_at": received_at,
        }
    return list(by_key.values()), rejected
