"""The monitor's SQL store: idempotent ingest of predictions and late actuals, and the window queries.

>>> store = MonitorStore("sqlite:///monitor.db")  # doctest: +SKIP
>>> store.log_predictions("pv-nrel-50", 3, records).stored  # doctest: +SKIP
24
>>> store.scored("pv-nrel-50", start, end)  # predictions joined with their actuals  # doctest: +SKIP

Idempotency: a prediction is identified by (model, record id), so a redelivered batch stores
nothing twice; an actual by (entity, target time), so a corrected actual replaces the first one.
Actuals join the predictions they score when they arrive, however late: the join happens at query
time on (entity, target_time), the actuals' primary key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Engine,
    and_,
    cast,
    func,
    select,
)

from maestrale.monitoring import schema as t
from maestrale.monitoring._bulk import (
    _PREDICTION_COLUMNS,
    _bulk,
    _bulk_path,
    _insert_ignoring,
    _prediction_data,
    _upsert_actuals,
)
from maestrale.monitoring.ingest import (
    MAX_BATCH,
    IngestResult,
    checked_predictions,
    validate_actuals,
)
from maestrale.monitoring.records import MonitorRecords
from maestrale.platform.clock import aware
from maestrale.platform.db import ensure_schema, writer

if TYPE_CHECKING:
    import pandas as pd


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"{dt} has no time zone: pass an aware datetime, e.g. datetime(..., tzinfo=UTC)")
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A half-open interval of target times [start, end)."""

    start: datetime
    end: datetime


class MonitorStore(MonitorRecords):
    """Predictions, actuals and the monitor's records in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, database_url: str | Engine, *, auto_upgrade: bool = True) -> None:
        self.engine = (
            database_url if isinstance(database_url, Engine) else ensure_schema(database_url, auto_upgrade)
        )
        self._writer = writer(self.engine)
        self._registered: set[str] = set()  # models known to have a monitor_state row

    # -- ingest -----------------------------------------------------------------------------------
    def log_predictions(self, model: str, version: int, records: Sequence[Any]) -> IngestResult:
        """Store a batch of predictions of `model:version`; invalid records are reported, not stored."""
        from maestrale.refs import validate_name

        validate_name(model)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"version must be a positive integer (the registry version), not {version!r}")
        if len(records) > MAX_BATCH:
            raise ValueError(f"{len(records)} records in one batch: send at most {MAX_BATCH} per call")
        logged_at = datetime.now(UTC)
        checked, rejected = checked_predictions(records)
        if model not in self._registered and checked:
            self._register_model(model)
        with self._writer.begin() as conn:
            if _bulk_path(conn, t.predictions, _PREDICTION_COLUMNS):
                # a column-wise batch (`monitoring._columns`) carries its features as JSON text already
                text = hasattr(records, "checked")
                data = _prediction_data(conn, model, version, checked, logged_at, features_text=text)
                new = _bulk(conn, t.predictions, _PREDICTION_COLUMNS, data, "ON CONFLICT DO NOTHING")
            else:
                if hasattr(records, "checked"):  # features as JSON text: SQLAlchemy's JSON type wants values
                    checked = [(*c[:-1], json.loads(c[-1])) for c in checked]
                rows = [
                    dict(zip(_PREDICTION_COLUMNS, (model, version, *c, logged_at), strict=True))
                    for c in checked
                ]
                new = _insert_ignoring(conn, t.predictions, rows)
        return IngestResult(stored=new, duplicates=len(checked) - new, rejected=rejected)

    def log_actuals(self, records: Sequence[Any]) -> IngestResult:
        """Store observed values; an actual already stored for the same entity and time is replaced."""
        if len(records) > MAX_BATCH:
            raise ValueError(f"{len(records)} records in one batch: send at most {MAX_BATCH} per call")
        rows, rejected = validate_actuals(records)
        with self._writer.begin() as conn:
            _upsert_actuals(conn, rows)
        return IngestResult(stored=len(rows), rejected=rejected)

    # -- queries ----------------------------------------------------------------------------------
    def scored(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: int | None = None,
        entity: str | None = None,
        features: bool = False,
    ) -> pd.DataFrame:
        """Predictions of `model` with target time in [start, end) that have an actual, joined to it.

        Columns: target_time, issued_at (UTC), horizon_s, entity, version, prediction, actual, and with
        `features=True` one column per logged feature.
        """
        p, a = t.predictions, t.actuals
        cols = [
            p.c.target_time,
            p.c.issued_at,
            p.c.horizon_s,
            p.c.entity,
            p.c.version,
            p.c.prediction,
            a.c.value.label("actual"),
        ]
        if features:
            cols.append(p.c.features)
        q = (
            select(*cols)
            .join(a, and_(a.c.entity == p.c.entity, a.c.target_time == p.c.target_time))
            .where(p.c.model == model, p.c.target_time >= _utc(start), p.c.target_time < _utc(end))
            .order_by(p.c.target_time, p.c.id)
        )
        if version is not None:
            q = q.where(p.c.version == version)
        if entity is not None:
            q = q.where(p.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return _frame(rows, [c.name for c in cols], features)

    def scored_buckets(self, model: str, start: datetime, end: datetime, bucket_s: int) -> pd.DataFrame:
        """`scored` averaged in the database per `bucket_s` seconds of target time and per version.

        Columns: t (the bucket's start, epoch seconds), version, prediction, actual (means over the
        pairs), n (pairs). A year of hourly pairs comes back as a few thousand rows, so a chart of it
        costs no Python per pair (the web UI's forecast-vs-actual chart).

        >>> store.scored_buckets("pv-nrel-50", start, end, 7200).columns.tolist()  # doctest: +SKIP
        ['t', 'version', 'prediction', 'actual', 'n']
        """
        import pandas as pd

        if not isinstance(bucket_s, int) or isinstance(bucket_s, bool) or bucket_s < 1:
            raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
        p, a = t.predictions, t.actuals
        if self.engine.dialect.name == "postgresql":
            seconds = cast(func.floor(func.extract("epoch", p.c.target_time)), BigInteger)
        else:  # SQLite keeps UTC times as text, which strftime reads
            seconds = cast(func.strftime("%s", p.c.target_time), BigInteger)
        bucket = ((seconds // bucket_s) * bucket_s).label("t")  # floor division of integers
        q = (
            select(bucket, p.c.version, func.avg(p.c.prediction), func.avg(a.c.value), func.count())
            .join(a, and_(a.c.entity == p.c.entity, a.c.target_time == p.c.target_time))
            .where(p.c.model == model, p.c.target_time >= _utc(start), p.c.target_time < _utc(end))
            .group_by(bucket, p.c.version)
            .order_by(bucket, p.c.version)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        names = ["t", "version", "prediction", "actual", "n"]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        frame = pd.DataFrame(dict(zip(names, columns, strict=True)), columns=names)
        return frame.astype({"t": "int64", "version": "int64", "prediction": "float64", "actual": "float64",
                             "n": "int64"})  # fmt: skip

    def data_start(self, model: str) -> datetime | None:
        """The earliest target time logged for `model` (one row down its index), None if none."""
        p = t.predictions
        q = select(p.c.target_time).where(p.c.model == model).order_by(p.c.target_time).limit(1)
        with self.engine.connect() as conn:
            value = conn.execute(q).scalar()
        return None if value is None else aware(value)

    def logged(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None
    ) -> pd.DataFrame:
        """Every logged prediction (with or without an actual) in [start, end), with its features."""
        p = t.predictions
        cols = [p.c.target_time, p.c.issued_at, p.c.horizon_s, p.c.entity, p.c.version, p.c.prediction]
        q = (
            select(*cols, p.c.features)
            .where(p.c.model == model, p.c.target_time >= _utc(start), p.c.target_time < _utc(end))
            .order_by(p.c.target_time, p.c.id)
        )
        if version is not None:
            q = q.where(p.c.version == version)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return _frame(rows, [c.name for c in cols] + ["features"], True)

    def actual_series(self, entities: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Actuals of `entities` in [start, end): columns entity, target_time, value."""
        import pandas as pd

        a = t.actuals
        q = select(a.c.entity, a.c.target_time, a.c.value).where(
            a.c.entity.in_(list(entities)), a.c.target_time >= _utc(start), a.c.target_time < _utc(end)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        frame = pd.DataFrame(rows, columns=["entity", "target_time", "value"])
        frame["target_time"] = pd.to_datetime(frame["target_time"], utc=True)
        return frame

    def data_time(self, model: str) -> datetime | None:
        """The monitor's clock for `model`: the latest target time with both a prediction and an actual."""
        p, a = t.predictions, t.actuals
        # newest first, down the (model, target_time) index, stopping at the first with an actual: a
        # few rows whatever the history (max() over the join read all of it: 18 ms a model-year on
        # PostgreSQL, every tick, for every model; this is 0.2 ms)
        q = (
            select(p.c.target_time)
            .join(a, and_(a.c.entity == p.c.entity, a.c.target_time == p.c.target_time))
            .where(p.c.model == model)
            .order_by(p.c.target_time.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            value = conn.execute(q).scalar()
        return None if value is None else aware(value)

    def latest_version(self, model: str) -> int | None:
        """The version of the most recently logged prediction of `model`."""
        p = t.predictions
        q = select(p.c.version).where(p.c.model == model).order_by(p.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()

    def _register_model(self, model: str) -> None:
        # One small row per model, written once per process: the monitor lists models from it
        # instead of a DISTINCT over every logged prediction.
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        stmt = dialect_insert(t.monitor_state).values(model=model, updated_at=datetime.now(UTC))
        with self._writer.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing())
        self._registered.add(model)

    def models(self) -> list[str]:
        """Models with logged predictions (and any the monitor has state for)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.monitor_state.c.model).order_by("model")).scalars())


def _frame(rows: Sequence[Any], names: list[str], features: bool) -> pd.DataFrame:
    import pandas as pd

    # column by column from plain tuples: handed SQLAlchemy Rows, pandas probes each one for
    # namedtuple/dataclass traits (3-8x slower: 8,300 scored rows took 175-450 ms instead of 30-150)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    frame = pd.DataFrame(dict(zip(names, columns, strict=True)), columns=names)
    for col in ("target_time", "issued_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["prediction"] = frame["prediction"].astype("float64")
    if "actual" in frame:
        frame["actual"] = frame["actual"].astype("float64")
    if features:
        raw = frame.pop("features")
        expanded = pd.DataFrame.from_records(list(raw), index=frame.index) if len(raw) else pd.DataFrame()
        frame = pd.concat([frame, expanded.astype("float64", errors="ignore")], axis=1)
    return frame
