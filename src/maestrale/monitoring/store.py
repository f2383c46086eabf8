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

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    SmallInteger,
    String,
    and_,
    func,
    insert,
    select,
    update,
)

from maestrale.db import ensure_schema, writer
from maestrale.monitoring import schema as t
from maestrale.monitoring.ingest import (
    CHECKED_FIELDS,
    MAX_BATCH,
    IngestResult,
    checked_predictions,
    validate_actuals,
)
from maestrale.registry.outbox import aware

if TYPE_CHECKING:
    import pandas as pd


def _json_text(value: Any) -> str:
    # pydantic-core's serialiser: ~4x faster than json.dumps on float-heavy features (Rust float
    # formatting); the same JSON values (compact separators), and a NaN nested anywhere becomes null,
    # as a top-level one already does (PostgreSQL refuses NaN in JSON).
    return to_json(value, inf_nan_mode="null").decode()


# PostgreSQL types of the binary COPY, by SQLAlchemy type (JSON goes as its text: json_recv reads text).
_PG_BINARY = (
    (JSON, "text"), (DateTime, "timestamptz"), (BigInteger, "int8"), (SmallInteger, "int2"),
    (Integer, "int4"), (Float, "float8"), (String, "text"),
)  # fmt: skip


def _pg_types(table: Any, names: Sequence[str]) -> list[str] | None:
    """The binary COPY types of these columns, or None if one has a type `_PG_BINARY` does not know."""
    out = []
    for n in names:
        col_type = table.c[n].type
        pg = next((pg for cls, pg in _PG_BINARY if isinstance(col_type, cls)), "?")
        if isinstance(col_type, DateTime) and not col_type.timezone:
            pg = "timestamp"
        elif isinstance(col_type, Float) and (col_type.precision or 53) <= 24:
            pg = "float4"
        if pg == "?":
            return None
        out.append(pg)
    return out


def _bulk_path(conn: Connection, table: Any, names: Sequence[str]) -> bool:
    """True when `_bulk` can write these columns: SQLite, or PostgreSQL through psycopg 3."""
    if conn.dialect.name == "sqlite":
        return True
    return conn.dialect.driver == "psycopg" and _pg_types(table, names) is not None


def _formats(conn: Connection, table: Any, names: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    """Per column, what turns a Python value into what `_bulk` sends (None: the value as it is).

    JSON columns: JSON text (None too: SQLAlchemy stores it as JSON null). PostgreSQL takes the rest
    as they are (binary COPY). SQLite: SQLAlchemy's bind processors, so values are stored exactly as
    SQLAlchemy stores them (times as text, computed once per distinct time of a batch: records share
    their issue and target times).
    """
    dialect = conn.dialect
    out: list[Callable[[Any], Any] | None] = []
    for n in names:
        col_type = table.c[n].type
        fn = None
        if isinstance(col_type, JSON):
            fn = _json_text
        elif dialect.name != "postgresql":
            fn = col_type.dialect_impl(dialect).bind_processor(dialect)
            if fn is not None:
                fn = _memo(fn) if isinstance(col_type, DateTime) else _not_none(fn)
        out.append(fn)
    return out


def _memo(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # Keyed by the time zone too: equal instants in two zones may format differently.
    cache: dict[Any, Any] = {}

    def cached(value: Any) -> Any:
        if value is None:
            return None
        key = (value, value.tzinfo)
        out = cache.get(key)
        if out is None:
            out = cache[key] = fn(value)
        return out

    return cached


def _not_none(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else fn(value)


def _dict_data(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(column names, converted values) of dict rows that all have the same keys."""
    names = list(rows[0])
    convert = [(i, f) for i, f in enumerate(_formats(conn, table, names)) if f is not None]
    pick = itemgetter(*names)
    data = []
    for row in rows:
        values = list(pick(row)) if len(names) > 1 else [row[names[0]]]
        for i, f in convert:
            values[i] = f(values[i])
        data.append(values)
    return names, data


def _bulk(conn: Connection, table: Any, names: Sequence[str], data: list[list[Any]], on_conflict: str) -> int:
    """`INSERT INTO table (names) … <on_conflict>` of converted rows (`_formats`); returns the rowcount.

    PostgreSQL (psycopg 3): binary COPY straight into the table, in a savepoint; if a key is already
    stored, binary COPY into a session-local temp table and one `INSERT … SELECT … <on_conflict>`
    instead. Either way the rowcount (new rows, or inserted + updated) is exact. SQLite: one prepared
    statement run with `executemany` (its rowcount sums the rows each parameter set changed). Both skip
    SQLAlchemy's compilation of a 1,000-row VALUES list, which cost far more than the database's work.
    """
    if not data:
        return 0
    preparer = conn.dialect.identifier_preparer
    cols = ", ".join(preparer.quote(n) for n in names)
    target = preparer.format_table(table)
    dbapi = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(names))
        cur = dbapi.cursor()
        try:
            cur.executemany(f"INSERT INTO {target} ({cols}) VALUES ({marks}) {on_conflict}", data)
            return cur.rowcount
        finally:
            cur.close()
    from psycopg.errors import UniqueViolation

    types = _pg_types(table, names)

    def copy_into(cur: Any, into: str) -> None:
        with cur.copy(f"COPY {into} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for values in data:
                copy.write_row(values)

    with dbapi.cursor() as cur:
        # Optimistic: COPY is PostgreSQL's bulk insert, several times cheaper than INSERT row by row.
        # A key already stored (a redelivered batch, a corrected actual) aborts it: back to the
        # savepoint, and the batch takes the ON CONFLICT path below.
        cur.execute("SAVEPOINT maestrale_bulk")
        try:
            copy_into(cur, target)
        except UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT maestrale_bulk")
        else:
            copied = cur.rowcount
            cur.execute("RELEASE SAVEPOINT maestrale_bulk")
            return copied
        # One temp table per session and column list; ON COMMIT DELETE ROWS empties it after use.
        stage = preparer.quote(f"_maestrale_stage_{table.name}_{zlib.crc32(cols.encode()):08x}")
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM {target} WITH NO DATA; DELETE FROM {stage}"
        )
        copy_into(cur, stage)
        # ORDER BY ctid: the rows (and their ids) go in the batch's order, as with COPY or VALUES
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ORDER BY ctid {on_conflict}")
        return cur.rowcount


_PREDICTION_COLUMNS = ("model", "version", *CHECKED_FIELDS, "logged_at")


def _prediction_data(
    conn: Connection, model: str, version: int, checked: list[tuple[Any, ...]], logged_at: datetime
) -> list[list[Any]]:
    """Rows of `_PREDICTION_COLUMNS` for `_bulk`, from `checked_predictions` (the hot loop of ingest)."""
    fmt = dict(zip(_PREDICTION_COLUMNS, _formats(conn, t.predictions, _PREDICTION_COLUMNS), strict=True))
    if any(fmt[k] is not None for k in ("model", "version", "record_id", "entity", "horizon_s")):
        raise AssertionError("unexpected bind processor for a text or integer column")
    stamp = fmt["issued_at"] or (lambda v: v)
    number = fmt["prediction"] or (lambda v: v)
    logged = stamp(logged_at)
    return [
        [
            model,
            version,
            record_id,
            entity,
            stamp(issued_at),
            stamp(target_time),
            horizon_s,
            number(point),
            "null" if output is None else _json_text(output),
            _json_text(features),
            logged,
        ]
        for record_id, entity, issued_at, target_time, horizon_s, point, output, features in checked
    ]


def _insert_ignoring(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> int:
    """INSERT … ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    if _bulk_path(conn, table, list(rows[0])):
        return _bulk(conn, table, *_dict_data(conn, table, rows), "ON CONFLICT DO NOTHING")
    from sqlalchemy.dialects.postgresql import insert as dialect_insert

    # PostgreSQL through another driver (psycopg2): multi-row VALUES, 2,000 rows per statement
    stmt = dialect_insert(table).on_conflict_do_nothing()
    return sum(conn.execute(stmt.values(rows[i : i + 2_000])).rowcount for i in range(0, len(rows), 2_000))


def _upsert_actuals(conn: Connection, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    if _bulk_path(conn, t.actuals, list(rows[0])):
        update_ = "DO UPDATE SET value = excluded.value, received_at = excluded.received_at"
        _bulk(
            conn,
            t.actuals,
            *_dict_data(conn, t.actuals, rows),
            f"ON CONFLICT (entity, target_time) {update_}",
        )
        return len(rows)
    from sqlalchemy.dialects.postgresql import insert as dialect_insert

    for i in range(0, len(rows), 2_000):
        stmt = dialect_insert(t.actuals).values(rows[i : i + 2_000])
        stmt = stmt.on_conflict_do_update(
            index_elements=["entity", "target_time"],
            set_={"value": stmt.excluded.value, "received_at": stmt.excluded.received_at},
        )
        conn.execute(stmt)
    return len(rows)


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"{dt} has no time zone: pass an aware datetime, e.g. datetime(..., tzinfo=UTC)")
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A half-open interval of target times [start, end)."""

    start: datetime
    end: datetime


class MonitorStore:
    """Predictions, actuals and the monitor's records in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, database_url: str | Engine, *, auto_upgrade: bool = True) -> None:
        self.engine = (
            database_url if isinstance(database_url, Engine) else ensure_schema(database_url, auto_upgrade)
        )
        self._writer = writer(self.engine)

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
        with self._writer.begin() as conn:
            if _bulk_path(conn, t.predictions, _PREDICTION_COLUMNS):
                data = _prediction_data(conn, model, version, checked, logged_at)
                new = _bulk(conn, t.predictions, _PREDICTION_COLUMNS, data, "ON CONFLICT DO NOTHING")
            else:
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
        q = (
            select(func.max(p.c.target_time))
            .join(a, and_(a.c.entity == p.c.entity, a.c.target_time == p.c.target_time))
            .where(p.c.model == model)
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

    def models(self) -> list[str]:
        """Models with logged predictions."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.predictions.c.model).distinct().order_by("model")).scalars())

    # -- the monitor's own records ----------------------------------------------------------------
    def add_evaluation(self, conn: Connection, **row: Any) -> None:
        """Append one evaluation (kind performance|drift) inside the caller's transaction."""
        conn.execute(insert(t.monitor_evaluations).values(evaluated_at=datetime.now(UTC), **row))

    def add_breach(self, conn: Connection, **row: Any) -> int:
        """Record a breach inside the caller's transaction; returns its id."""
        res = conn.execute(insert(t.monitor_breaches).values(detected_at=datetime.now(UTC), **row))
        return int(res.inserted_primary_key[0])

    def add_decision(self, conn: Connection, **row: Any) -> None:
        """Record a champion/challenger decision inside the caller's transaction."""
        conn.execute(insert(t.monitor_decisions).values(decided_at=datetime.now(UTC), **row))

    def state(self, model: str) -> dict[str, Any]:
        """The monitor's state of `model` (empty dict before its first evaluation)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.monitor_state).where(t.monitor_state.c.model == model))
                .mappings()
                .first()
            )
        if row is None:
            return {}
        return {k: (aware(v) if isinstance(v, datetime) else v) for k, v in row.items()}

    def set_state(self, conn: Connection, model: str, **values: Any) -> None:
        """Update (or create) the state row of `model` inside the caller's transaction."""
        values["updated_at"] = datetime.now(UTC)
        done = conn.execute(update(t.monitor_state).where(t.monitor_state.c.model == model).values(**values))
        if done.rowcount == 0:
            conn.execute(insert(t.monitor_state).values(model=model, **values))

    def series(
        self, model: str, *, kind: str = "performance", window: str | None = None, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """Stored evaluations of `model`, oldest first: as_of, version, window, n and the values."""
        e = t.monitor_evaluations
        q = select(e.c.as_of, e.c.version, e.c.window, e.c.n, e.c["values"]).where(
            e.c.model == model, e.c.kind == kind
        )
        if window is not None:
            q = q.where(e.c.window == window)
        q = q.order_by(e.c.as_of, e.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{**r, "as_of": aware(r["as_of"])} for r in rows]

    def breaches(self, model: str | None = None, limit: int = 1_000) -> list[dict[str, Any]]:
        """Recorded breaches, oldest first."""
        b = t.monitor_breaches
        q = select(b).order_by(b.c.as_of, b.c.id).limit(limit)
        if model is not None:
            q = q.where(b.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in rows]

    def decisions(self, model: str | None = None, limit: int = 1_000) -> list[dict[str, Any]]:
        """Champion/challenger decisions with their numbers, oldest first."""
        d = t.monitor_decisions
        q = select(d).order_by(d.c.as_of, d.c.id).limit(limit)
        if model is not None:
            q = q.where(d.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in rows]

    def decided(self, model: str, challenger_version: int) -> bool:
        """True once a decision about `model:challenger_version` is recorded."""
        d = t.monitor_decisions
        q = select(d.c.id).where(d.c.model == model, d.c.challenger_version == challenger_version)
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    # -- read models of the API, the CLI and /metrics ---------------------------------------------
    def latest_evaluations(
        self, *, kind: str | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest stored evaluation of each (model, kind, window), in one bounded query.

        Rows: id, model, version, kind, window, as_of, n, values, evaluated_at (aware datetimes).

        >>> rows = store.latest_evaluations(kind="performance")  # doctest: +SKIP
        >>> [(r["model"], r["window"], r["n"]) for r in rows]  # doctest: +SKIP
        [('pv-nrel-50', '3D', 72), ('pv-nrel-50', '7D', 168)]
        """
        e = t.monitor_evaluations
        # max(id) per group is the latest row: ids grow with time, so no second sort key is needed
        latest = select(func.max(e.c.id).label("id")).group_by(e.c.model, e.c.kind, e.c.window)
        if kind is not None:
            latest = latest.where(e.c.kind == kind)
        if model is not None:
            latest = latest.where(e.c.model == model)
        sub = latest.subquery()
        q = select(e).join(sub, e.c.id == sub.c.id).order_by(e.c.model, e.c.kind, e.c.window)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in rows]

    def breach_counts(self, model: str | None = None) -> dict[tuple[str, str], int]:
        """Recorded breaches per (model, condition), in one grouped query."""
        b = t.monitor_breaches
        q = select(b.c.model, b.c.condition, func.count()).group_by(b.c.model, b.c.condition)
        if model is not None:
            q = q.where(b.c.model == model)
        with self.engine.connect() as conn:
            return {(m, c): int(n) for m, c, n in conn.execute(q).all()}

    def known(self, model: str) -> bool:
        """True if `model` has logged predictions or stored evaluations (an index lookup each)."""
        p, e = t.predictions, t.monitor_evaluations
        with self.engine.connect() as conn:
            if conn.execute(select(p.c.id).where(p.c.model == model).limit(1)).first() is not None:
                return True
            return conn.execute(select(e.c.id).where(e.c.model == model).limit(1)).first() is not None

    def audit_trail(self, kind: str, model: str, limit: int = 1_000) -> list[dict[str, Any]]:
        """The newest `limit` breaches (`kind="breaches"`) or decisions (`"decisions"`), oldest first.

        Unlike `breaches()`/`decisions()`, a long history keeps its recent end, not its start.
        """
        table = {"breaches": t.monitor_breaches, "decisions": t.monitor_decisions}[kind]
        q = (
            select(table)
            .where(table.c.model == model)
            .order_by(table.c.as_of.desc(), table.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in reversed(rows)]

    def overview(
        self, model: str | None = None, *, aliases: Callable[[str], dict[str, int]] | None = None
    ) -> list[dict[str, Any]]:
        """One summary per monitored model: clock, latest performance per window, breaches, challenger.

        `aliases(name)` gives the registry's aliases of a model (`{"champion": 3}`): the serving
        version is the champion, else the version of the latest logged prediction (as the monitor
        decides). `open_breaches` counts the conditions that fired at the latest evaluation.

        >>> store.overview(aliases=lambda name: registry.get_model(name).aliases)  # doctest: +SKIP
        [{'model': 'pv-nrel-50', 'serving_version': 3, 'as_of': ..., 'performance': {'7D': {...}}, ...}]
        """
        models = [model] if model is not None else self.models()
        perf: dict[str, dict[str, Any]] = {}
        evaluated: dict[str, datetime] = {}
        for row in self.latest_evaluations(model=model):
            m = row["model"]
            evaluated[m] = max(evaluated.get(m, row["evaluated_at"]), row["evaluated_at"])
            if row["kind"] == "performance":
                values = row["values"] or {}
                perf.setdefault(m, {})[row["window"]] = {
                    "version": row["version"],
                    "as_of": row["as_of"],
                    "n": row["n"],
                    "overall": values.get("overall", {}),
                    "ratios": values.get("ratios", {}),
                    "training": values.get("training", {}),
                }
        s, b = t.monitor_state, t.monitor_breaches
        states_q = select(s)
        totals_q = select(b.c.model, func.count()).group_by(b.c.model)
        # breaches recorded at the model's latest evaluation: the conditions firing now
        open_q = (
            select(b.c.model, func.count())
            .join(s, and_(s.c.model == b.c.model, s.c.as_of == b.c.as_of))
            .group_by(b.c.model)
        )
        if model is not None:
            states_q = states_q.where(s.c.model == model)
            totals_q = totals_q.where(b.c.model == model)
            open_q = open_q.where(b.c.model == model)
        with self.engine.connect() as conn:
            states = {r["model"]: _aware_row(r) for r in conn.execute(states_q).mappings().all()}
            totals = dict(conn.execute(totals_q).all())
            opened = dict(conn.execute(open_q).all())
        out = []
        for m in models:
            state = states.get(m, {})
            known_aliases = aliases(m) if aliases is not None else {}
            champion = known_aliases.get("champion")
            out.append(
                {
                    "model": m,
                    "serving_version": champion if champion is not None else self.latest_version(m),
                    "champion": champion,
                    "challenger": known_aliases.get("challenger"),
                    "challenger_since": state.get("challenger_since"),
                    "as_of": state.get("as_of"),
                    "evaluated_at": evaluated.get(m),
                    "performance": perf.get(m, {}),
                    "open_breaches": int(opened.get(m, 0)),
                    "breaches_total": int(totals.get(m, 0)),
                    "last_retrain_at": state.get("last_retrain_at"),
                    "last_retrain_request": state.get("last_retrain_request"),
                }
            )
        return out


def _aware_row(row: Any) -> dict[str, Any]:
    return {k: (aware(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _frame(rows: Sequence[Any], names: list[str], features: bool) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=names)
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
