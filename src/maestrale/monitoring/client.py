"""What a forecasting microservice calls: `log_predictions` after it forecasts, `log_actuals` when data lands.

>>> import maestrale
>>> maestrale.log_predictions(forecast, model="pv-nrel-50", version=3, entity="nrel-50",
...                           issued_at="2012-06-01T18:00Z")  # doctest: +SKIP
24
>>> maestrale.log_actuals(measured, entity="nrel-50", value="power_kw")  # doctest: +SKIP
24

Both publish on the bus chosen by `MAESTRALE_BROKER_URL` (`maestrale.prediction.logged` and
`maestrale.actual.logged`, batches of `batch_size` records, confirmed by the broker) for the monitor
to store; the monitor validates each record and keeps the valid ones of a batch. Pass
`store=MonitorStore(...)` to write straight into the monitor's database instead (tests, notebooks).

Record ids default to `entity/issued_at/target_time`, so logging the same forecast twice stores
it once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from maestrale.bus.schemas import ActualLogged, PredictionLogged

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.bus.transport import Transport
    from maestrale.config import Settings
    from maestrale.monitoring.ingest import IngestResult
    from maestrale.monitoring.store import MonitorStore

RESERVED = ("target_time", "entity", "issued_at", "record_id", "prediction", "horizon")
_transports: dict[tuple[str, str], Transport] = {}
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


def _iso(values: Any) -> list[str]:
    import pandas as pd

    stamps = pd.DatetimeIndex(pd.to_datetime(values))
    if stamps.tz is None:
        raise ValueError(
            "times have no time zone: localize them first, e.g. df.index.tz_localize('UTC') "
            "(a naive time is ambiguous across sites and DST)"
        )
    return list(stamps.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


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
) -> list[dict[str, Any]]:
    """The JSON records of a forecast frame (index or `target_time` column: the target times)."""
    import pandas as pd

    n = len(frame)
    targets = frame["target_time"] if "target_time" in frame.columns else frame.index
    if not isinstance(targets, pd.Series | pd.DatetimeIndex):
        raise ValueError("give the frame a DatetimeIndex or a target_time column")
    target_iso = _iso(targets)
    if issued_at is not None:
        issued_iso = _iso([issued_at]) * n
    elif "issued_at" in frame.columns:
        issued_iso = _iso(frame["issued_at"])
    else:
        raise ValueError("pass issued_at= (when the forecast was made) or give the frame an issued_at column")
    entities = [str(e) for e in _column_or(frame, "entity", entity, n)]
    if prediction not in frame.columns:
        raise ValueError(f"the frame has no {prediction!r} column: pass prediction='<column>'")
    preds = [_json_value(v) for v in frame[prediction].tolist()]
    names = (
        list(features)
        if features is not None
        else [c for c in frame.columns if c not in RESERVED and c != prediction]
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
    frame: pd.DataFrame | pd.Series, *, entity: str | None = None, value: str = "value"
) -> list[dict[str, Any]]:
    """The JSON records of measured values (index or `target_time` column: the times); NaN are left out."""
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame(value)
    targets = frame["target_time"] if "target_time" in frame.columns else frame.index
    if value not in frame.columns:
        raise ValueError(f"the frame has no {value!r} column: pass value='<column>'")
    iso = _iso(targets)
    entities = [str(e) for e in _column_or(frame, "entity", entity, len(frame))]
    vals = frame[value].astype("float64").tolist()
    return [
        {"entity": e, "target_time": t, "value": v}
        for e, t, v in zip(entities, iso, vals, strict=True)
        if math.isfinite(v)
    ]


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


def log_predictions(
    frame: pd.DataFrame,
    *,
    model: str,
    version: int,
    entity: str | None = None,
    issued_at: datetime | str | None = None,
    prediction: str = "prediction",
    features: Sequence[str] | None = None,
    batch_size: int = 1_000,
    store: MonitorStore | None = None,
    settings: Settings | None = None,
    transport: Transport | None = None,
) -> int | IngestResult:
    """Log a forecast of `model:version`: one record per row (target time = index or `target_time`).

    Every column other than the prediction and the reserved ones (entity, issued_at, record_id,
    horizon) is a model input and is logged as a feature: the monitor needs them for drift and for
    scoring a challenger. Returns the number of records published (or, with `store=`, the
    `IngestResult` with any rejected records).
    """
    from maestrale.refs import validate_name

    validate_name(model)
    records = prediction_records(
        frame, entity=entity, issued_at=issued_at, prediction=prediction, features=features
    )
    if store is not None:
        return store.log_predictions(model, int(version), records)
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    payload = [(PredictionLogged, {"model": model, "version": int(version), "records": b}) for b in batches]
    publish_payloads(payload, model, settings, transport)
    return len(records)


def log_actuals(
    frame: pd.DataFrame | pd.Series,
    *,
    entity: str | None = None,
    value: str = "value",
    batch_size: int = 5_000,
    store: MonitorStore | None = None,
    settings: Settings | None = None,
    transport: Transport | None = None,
) -> int | IngestResult:
    """Log measured values (e.g. the plant's power) of `entity`; missing (NaN) values are skipped."""
    records = actual_records(frame, entity=entity, value=value)
    if store is not None:
        return store.log_actuals(records)
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    publish_payloads([(ActualLogged, {"records": b}) for b in batches], None, settings, transport)
    return len(records)


def utcnow() -> datetime:
    """Now, in UTC (the default issue time of a forecast made now)."""
    return datetime.now(UTC)
