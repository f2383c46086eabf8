"""Fast, exact bulk writes of the monitor's ingest: binary COPY on PostgreSQL, executemany on SQLite.

`MonitorStore.log_predictions` / `log_actuals` call these; the semantics (idempotent by key, exact
new-row counts) are the store's, the speed is here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
)

from maestrale.monitoring import schema as t
from maestrale.monitoring.ingest import (
    CHECKED_FIELDS,
)

if TYPE_CHECKING:
    pass


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
        fn: Callable[[Any], Any] | None = None
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
    assert dbapi is not None  # a pooled connection in use always has its driver connection
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
    conn: Connection,
    model: str,
    version: int,
    checked: list[tuple[Any, ...]],
    logged_at: datetime,
    *,
    features_text: bool = False,
) -> list[list[Any]]:
    """Rows of `_PREDICTION_COLUMNS` for `_bulk`, from `checked_predictions` (the hot loop of ingest).

    `features_text`: the features are JSON text already (the column-wise path), sent as they are.
    """
    fmt = dict(zip(_PREDICTION_COLUMNS, _formats(conn, t.predictions, _PREDICTION_COLUMNS), strict=True))
    if any(fmt[k] is not None for k in ("model", "version", "record_id", "entity", "horizon_s")):
        raise AssertionError("unexpected bind processor for a text or integer column")
    if features_text and fmt["issued_at"] is None and fmt["prediction"] is None:
        # PostgreSQL (binary COPY takes the values as they are) and a column-wise batch: no call per
        # value, the hot loop of ingest at its cheapest
        return [
            [model, version, rid, ent, issued, target, horizon, point,
             "null" if output is None else _json_text(output), features, logged_at]
            for rid, ent, issued, target, horizon, point, output, features in checked
        ]  # fmt: skip
    stamp = fmt["issued_at"] or (lambda v: v)
    number = fmt["prediction"] or (lambda v: v)
    logged = stamp(logged_at)
    features_json = str if features_text else _json_text
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
            features_json(features),
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
