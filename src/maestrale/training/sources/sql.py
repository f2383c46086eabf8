"""A SQL query by SQLAlchemy URL (PostgreSQL, SQLite, anything SQLAlchemy speaks).

>>> from maestrale.training.spec import SqlSource
>>> query = "SELECT * FROM pv WHERE time >= :start ORDER BY time"
>>> src = SqlSource(sql={"url": "${PV_DB_URL}", "query": query})
>>> load_sql(src, window).frame.columns  # doctest: +SKIP

`:start` and `:end` in the query are bound from the spec's `train_window`, so a retraining that moves
the window forward reads only the rows it needs. The fingerprint is the hash of the result frame.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from maestrale.errors import BackendUnavailable, InvalidInput
from maestrale.training.fleet import mask_secrets
from maestrale.training.sources import DataVersion, LoadedData, expand_env, redact
from maestrale.training.spec import SqlSource, TrainWindow

_BIND = re.compile(r"(?<![:\w]):(start|end)\b")


def _bounds(window: TrainWindow | None, names: set[str]) -> dict[str, Any]:
    """`start` inclusive; `end` exclusive (a date's whole day included), as the trainer reads them."""
    params: dict[str, Any] = {}
    for name in names:
        value = getattr(window, name, None) if window else None
        if value is None:
            raise InvalidInput(
                f"the query uses :{name} but the spec has no train_window.{name}: add "
                f"`train_window: {{{name}: 2011-04-15}}` or remove :{name} from the query"
            )
        if name == "end" and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day) + timedelta(days=1)
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        params[name] = value
    return params


def load_sql(source: SqlSource, window: TrainWindow | None = None) -> LoadedData:
    """Run the query once and return its rows as a frame."""
    import pandas as pd
    import sqlalchemy as sa

    from maestrale.registry.metadata import fingerprint

    url = expand_env(source.sql.url, "data.sql.url")
    query = source.sql.query
    params = _bounds(window, set(_BIND.findall(query)))
    shown = mask_secrets(source.sql.url)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise InvalidInput(
            f"data.sql.url {shown!r} is not a usable SQLAlchemy URL ({redact(str(exc), url, shown)}); e.g. "
            "postgresql+psycopg://user@host:5432/db or sqlite:////data/pv.db"
        ) from None
    # typed binds: each dialect renders the bounds its own way (SQLite compares ISO strings)
    statement = sa.text(query).bindparams(*[sa.bindparam(name, type_=sa.DateTime()) for name in params])
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            reason = redact(str(exc.orig), url, shown)
            raise BackendUnavailable(f"cannot connect to {shown}: {reason}") from None
        with conn:
            frame = pd.read_sql_query(statement, conn, params=params)
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
        # pandas wraps the driver's error; show the database's own words
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ else exc
        reason = str(getattr(cause, "orig", cause)).strip().splitlines()[0]
        reason = redact(reason, url, shown)
        raise InvalidInput(f"the query failed on {shown}: {reason}; fix data.sql.query") from None
    finally:
        engine.dispose()  # a training job reads once; keeping a pool open would only hold connections
    version = DataVersion(kind="sql", uri=shown, fingerprint=fingerprint(frame), query=query, rows=len(frame))
    return LoadedData(frame=frame, version=version, label="the query result")
