"""What a forecasting microservice calls: `log_predictions` after it forecasts, `log_actuals` when data lands.

>>> import maestrale
>>> maestrale.log_predictions(forecast, model="pv-nrel-50", version=3, entity="nrel-50",
...                           issued_at="2012-06-01T18:00Z")  # doctest: +SKIP
24
>>> maestrale.log_actuals(measured, entity="nrel-50", value="power_kw")  # doctest: +SKIP
24

Both publish on the bus chosen by `MAESTRALE_BROKER_URL` (`maestrale.prediction.logged` and
`maestrale.actual.logged`, batches of `batch_size` records, confirmed by the broker) for the monitor
to store; the monitor validates each record and keeps the valid ones of a batch. On RabbitMQ the
monitor's queue is declared by the publish itself, so records logged before any monitor ran wait
for it. On the embedded default (`memory://`) with no monitor consuming in this process, they are
stored straight into the monitor's database, where `maestrale monitor status` finds them (see
`deliver`). Pass `store=MonitorStore(...)` to write into a given store (tests, notebooks).

Record ids default to `entity/issued_at/target_time`, so logging the same forecast twice stores
it once.

Before anything is published, each record is checked by the monitor's own per-record rules
(`maestrale.monitoring.ingest`): a NaN forecast or a bad time is reported here, with its row, and is
never counted as logged (`errors="raise"`, the default, logs nothing then; `errors="skip"` logs the
rest). Times follow `maestrale.timeparse`: naive ones need `timezone="Europe/Rome"` (their zone).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, overload

from maestrale.bus.schemas import ActualLogged, PredictionLogged
from maestrale.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.bus.transport import Transport
    from maestrale.config import Settings
    from maestrale.monitoring.ingest import IngestResult, Rejection
    from maestrale.monitoring.store import MonitorStore

RESERVED = ("target_time", "entity", "issued_at", "record_id", "prediction", "horizon")
log = logging.getLogger(__name__)
_transports: dict[tuple[str, str], Transport] = {}
_stores: dict[str, MonitorStore] = {}  # the embedded bus's direct path: one store per database URL
_lock = threading.Lock()


def _transport(settings: Settings | None) -> Transport:
    from maestrale.bus.transport import get_transport
    from maestrale.config import load_settings

    settings = settings or load_settings()
    key = (settings.broker_url, settings.bus_namespace)
    with _lock:
        if key not in _transports:
            _transports[key] = get_transport(*key)
        return _transports[key]


def _iso(values: Any, timezone: str | None = None, what: str = "the index (target times)") -> list[str]:
    """UTC ISO 8601 of times by `maestrale.timeparse`'s rule: naive ones only with `timezone=`."""
    from maestrale.timeparse import parse_times, to_utc_iso

    fix = (
        "pass timezone='Europe/Rome' (the zone they were written in) or give them an offset, "
        "e.g. df.index.tz_localize('Europe/Rome', ambiguous='infer')"
    )
    return to_utc_iso(parse_times(values, timezone=timezone, what=what, zone_fix=fix))


def _where(frame: pd.DataFrame) -> str:
    return "column 'target_time'" if "target_time" in frame.columns else "the index (target times)"


def _column_or(frame: pd.DataFrame, name: str, given: Any, n: int) -> list[Any]:
    if given is not None:
        return [given] * n
    if name in frame.columns:
        return frame[name].tolist()
    raise ValueError(f"pass {name}= or give the frame a {name!r} column")


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v


def prediction_records(
    frame: pd.DataFrame,
    *,
    entity: str | None = None,
    issued_at: datetime | str | None = None,
    prediction: str = "prediction",
    features: Sequence[str] | None = None,
    timezone: str | None = None,
) -> list[dict[str, Any]]:
    """The JSON records of a forecast frame (index or `target_time` column: the target times).

    Times follow `maestrale.timeparse`: with an offset, or naive in `timezone`. Columns of times
    (a feature pipeline's time input) are not features: the target time already says it. A NaN
    prediction stays NaN here, so validation names it (it is never published).
    """
    import pandas as pd

    n = len(frame)
    targets = frame["target_time"] if "target_time" in frame.columns else frame.index
    if not isinstance(targets, pd.Series | pd.DatetimeIndex):
        raise ValueError("give the frame a DatetimeIndex or a target_time column")
    target_iso = _iso(targets, timezone, _where(frame))
    if issued_at is not None:
        issued_iso = _iso([issued_at], timezone, "issued_at") * n
    elif "issued_at" in frame.columns:
        issued_iso = _iso(frame["issued_at"], timezone, "column 'issued_at'")
    else:
        raise ValueError("pass issued_at= (when the forecast was made) or give the frame an issued_at column")
    entities = [str(e) for e in _column_or(frame, "entity", entity, n)]
    if prediction not in frame.columns:
        raise ValueError(f"the frame has no {prediction!r} column: pass prediction='<column>'")
    preds = [v.item() if hasattr(v, "item") else v for v in frame[prediction].tolist()]
    names = (
        list(features)
        if features is not None
        else [
            c for c in frame.columns if c not in RESERVED and c != prediction and frame[c].dtype.kind != "M"
        ]
    )
    feats = frame[names].astype("float64").to_numpy() if names else None
    ids = frame["record_id"].astype(str).tolist() if "record_id" in frame.columns else None
    out = []
    for i in range(n):
        rid = ids[i] if ids else f"{entities[i]}/{issued_iso[i]}/{target_iso[i]}"
        row = (
            {} if feats is None else {k: _json_value(float(v)) for k, v in zip(names, feats[i], strict=True)}
        )
        out.append(
            {
                "record_id": rid, "entity": entities[i], "issued_at": issued_iso[i],
                "target_time": target_iso[i], "features": row, "prediction": preds[i],
            }
        )  # fmt: skip
    return out


def actual_records(
    frame: pd.DataFrame | pd.Series,
    *,
    entity: str | None = None,
    value: str = "value",
    timezone: str | None = None,
) -> list[dict[str, Any]]:
    """The JSON records of measured values (index or `target_time` column: the times); NaN are left out.

    Times follow `maestrale.timeparse`: with an offset, or naive in `timezone`.
    """
    return _actual_rows(frame, entity=entity, value=value, timezone=timezone)[0]


def _actual_rows(
    frame: pd.DataFrame | pd.Series, *, entity: str | None, value: str, timezone: str | None
) -> tuple[list[dict[str, Any]], list[int]]:
    """`actual_records` and, for each record, its row in `frame` (for messages about rejected rows)."""
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame(value)
    targets = frame["target_time"] if "target_time" in frame.columns else frame.index
    if value not in frame.columns:
        raise ValueError(f"the frame has no {value!r} column: pass value='<column>'")
    iso = _iso(targets, timezone, _where(frame))
    entities = [str(e) for e in _column_or(frame, "entity", entity, len(frame))]
    vals = frame[value].astype("float64").tolist()
    rows = [i for i, v in enumerate(vals) if math.isfinite(v)]
    return [{"entity": entities[i], "target_time": iso[i], "value": vals[i]} for i in rows], rows


class RejectedRecords(InvalidInput, ValueError):
    """Records the monitor would reject: nothing was logged; `rejected` lists each row and its reason."""

    def __init__(self, message: str, rejected: list[Rejection]) -> None:
        super().__init__(message)
        self.rejected = rejected


def check_records(
    records: list[dict[str, Any]], kind: str, rows: Sequence[int] | None = None
) -> list[Rejection]:
    """The records the monitor would reject, by its own per-record rules (`monitoring.ingest`).

    `rows[i]` is the frame row of record i (default: i), so a rejection names the caller's row.

    >>> check_records([{"entity": "p50", "target_time": "2012-06-01T10:00Z", "value": 2.0}], "actual")
    []
    """
    from dataclasses import replace

    from maestrale.monitoring.ingest import checked_predictions, validate_actuals

    rejected = checked_predictions(records)[1] if kind == "prediction" else validate_actuals(records)[1]
    return [replace(r, index=rows[r.index]) if rows is not None else r for r in rejected]


def _screen(
    records: list[dict[str, Any]], kind: str, errors: str, rows: Sequence[int] | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """The records to publish and the rejected ones; with `errors="raise"` any rejection raises."""
    if errors not in ("raise", "skip"):
        raise ValueError(
            f"errors={errors!r}: use 'raise' (log nothing if a row is bad) or 'skip' (log the rest)"
        )
    rejected = check_records(records, kind, rows)
    if not rejected:
        return records, []
    listed = "; ".join(f"row {r.index}: {r.reason}" for r in rejected[:5])
    more = f" (and {len(rejected) - 5} more)" if len(rejected) > 5 else ""
    if errors == "raise":
        raise RejectedRecords(
            f"{len(rejected)} of {len(records)} {kind} records would be rejected by the monitor, so nothing "
            f"was logged: {listed}{more}; fix those rows, or pass errors='skip' to log the others",
            rejected,
        )
    log.warning("%d %s record(s) not logged: %s%s", len(rejected), kind, listed, more)
    bad = {r.index for r in rejected}
    positions = rows if rows is not None else range(len(records))
    return [rec for rec, row in zip(records, positions, strict=True) if row not in bad], rejected


def publish_payloads(
    payloads: list[Any],
    subject: str | None,
    settings: Settings | None = None,
    transport: Transport | None = None,
) -> None:
    """Publish `(payload class, data dict)` pairs as CloudEvents in one confirmed batch."""
    from maestrale.bus.events import CloudEvent

    bus = transport or _transport(settings)
    events = [
        CloudEvent(source="maestrale/sdk", type=p.type, subject=subject, dataschema=p.dataschema(), data=d)
        for p, d in payloads
    ]
    bus.publish_events(events)


def deliver(
    payloads: list[Any], subject: str | None, settings: Settings | None, transport: Transport | None
) -> int:
    """Send `(payload class, data)` batches where the monitor will store them; returns the records sent.

    On a broker (RabbitMQ) the confirmed publish means they reached the monitor's durable queue: the
    transport declares it, and raises `Unroutable` rather than count what reached no queue. The
    in-process bus (memory://) reaches only queues of this process, so unless a monitor consumes its
    queue here (`maestrale demo`, a running `MonitorService`), the batches go straight into the monitor's
    store in the database of `settings`, the one `maestrale monitor` reads. Then the count
    is of records stored (or already stored); any the store rejects are logged and not counted.
    """
    from maestrale.bus.topology import MONITOR

    bus = transport or _transport(settings)
    # no monitor consuming in this process: nothing here would consume the events (a queue left by a
    # stopped monitor would keep them until exit, then lose them), so store them
    embedded = bus.in_process and not bus.consumer_count(MONITOR.name)
    if not embedded:
        publish_payloads(payloads, subject, settings, bus)
        return sum(len(data["records"]) for _, data in payloads)
    store = _embedded_store(settings)
    total: IngestResult | None = None
    for kind, data in payloads:
        if kind is PredictionLogged:
            result = store.log_predictions(data["model"], data["version"], data["records"])
        else:
            result = store.log_actuals(data["records"])
        total = result if total is None else total.add(result)
    if total is None:
        return 0
    if total.rejected:
        first = total.rejected[0]
        log.warning("the monitor's store rejected %d record(s), not logged; e.g. %s: %s", len(total.rejected),
                    first.record_id or f"record {first.index}", first.reason)  # fmt: skip
    return total.stored + total.duplicates


def _embedded_store(settings: Settings | None) -> MonitorStore:
    """The monitor's store in the database of `settings` (one per database URL in this process)."""
    from maestrale.config import load_settings
    from maestrale.monitoring.store import MonitorStore

    settings = settings or load_settings()
    url = settings.database_url
    assert url  # the Settings defaults always fill it
    with _lock:
        if url not in _stores:
            _stores[url] = MonitorStore(url, auto_upgrade=settings.auto_upgrade)
        return _stores[url]


# The count of records sent, or with `store=` (the monitor's own ingest) its `IngestResult`.
# fmt: off
@overload
def log_predictions(
    frame: pd.DataFrame, *, model: str, version: int, entity: str | None = ...,
    issued_at: datetime | str | None = ..., prediction: str = ..., features: Sequence[str] | None = ...,
    timezone: str | None = ..., errors: str = ..., batch_size: int = ..., store: None = ...,
    settings: Settings | None = ..., transport: Transport | None = ...,
) -> int: ...
@overload
def log_predictions(
    frame: pd.DataFrame, *, model: str, version: int, entity: str | None = ...,
    issued_at: datetime | str | None = ..., prediction: str = ..., features: Sequence[str] | None = ...,
    timezone: str | None = ..., errors: str = ..., batch_size: int = ..., store: MonitorStore,
    settings: Settings | None = ..., transport: Transport | None = ...,
) -> IngestResult: ...
# fmt: on
def log_predictions(
    frame: pd.DataFrame,
    *,
    model: str,
    version: int,
    entity: str | None = None,
    issued_at: datetime | str | None = None,
    prediction: str = "prediction",
    features: Sequence[str] | None = None,
    timezone: str | None = None,
    errors: str = "raise",
    batch_size: int = 1_000,
    store: MonitorStore | None = None,
    settings: Settings | None = None,
    transport: Transport | None = None,
) -> int | IngestResult:
    """Log a forecast of `model:version`: one record per row (target time = index or `target_time`).

    Every column other than the prediction, the reserved ones (entity, issued_at, record_id, horizon)
    and columns of times is a model input and is logged as a feature: the monitor needs them for
    drift and for scoring a challenger. Naive times are read in `timezone` (else refused). Each record
    is checked here by the monitor's own rules: with `errors="raise"` (default) one bad row raises
    `RejectedRecords` naming each row and reason and nothing is logged; with `errors="skip"` the
    others are logged. Returns the number of records logged, never counting a rejected one: published
    to the monitor's queue, or stored on the embedded bus (see `deliver`); with `store=`, the
    `IngestResult`, client-side rejections included.

    >>> log_predictions(forecast, model="pv-p50", version=3, entity="p50", issued_at=now,
    ...                 timezone="Europe/Rome")  # doctest: +SKIP
    24
    """
    from maestrale.refs import validate_name

    validate_name(model)
    records = prediction_records(
        frame, entity=entity, issued_at=issued_at, prediction=prediction, features=features,
        timezone=timezone,
    )  # fmt: skip
    records, rejected = _screen(records, "prediction", errors)
    if store is not None:
        result = store.log_predictions(model, int(version), records)
        result.rejected[:0] = rejected
        return result
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    payload = [(PredictionLogged, {"model": model, "version": int(version), "records": b}) for b in batches]
    return deliver(payload, model, settings, transport)


# fmt: off
@overload
def log_actuals(
    frame: pd.DataFrame | pd.Series, *, entity: str | None = ..., value: str = ...,
    timezone: str | None = ..., errors: str = ..., batch_size: int = ..., store: None = ...,
    settings: Settings | None = ..., transport: Transport | None = ...,
) -> int: ...
@overload
def log_actuals(
    frame: pd.DataFrame | pd.Series, *, entity: str | None = ..., value: str = ...,
    timezone: str | None = ..., errors: str = ..., batch_size: int = ..., store: MonitorStore,
    settings: Settings | None = ..., transport: Transport | None = ...,
) -> IngestResult: ...
# fmt: on
def log_actuals(
    frame: pd.DataFrame | pd.Series,
    *,
    entity: str | None = None,
    value: str = "value",
    timezone: str | None = None,
    errors: str = "raise",
    batch_size: int = 5_000,
    store: MonitorStore | None = None,
    settings: Settings | None = None,
    transport: Transport | None = None,
) -> int | IngestResult:
    """Log measured values (e.g. the plant's power) of `entity`; missing (NaN) values are skipped.

    Naive times are read in `timezone` (else refused); records are checked as in `log_predictions`.
    """
    records, rows = _actual_rows(frame, entity=entity, value=value, timezone=timezone)
    records, rejected = _screen(records, "actual", errors, rows)
    if store is not None:
        result = store.log_actuals(records)
        result.rejected[:0] = rejected
        return result
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    return deliver([(ActualLogged, {"records": b}) for b in batches], None, settings, transport)


def utcnow() -> datetime:
    """Now, in UTC (the default issue time of a forecast made now)."""
    return datetime.now(UTC)
