"""The processed-events ledger: which consumer applied which event, so a redelivery takes effect once.

`maestrale.bus.consumer.Consumer.transactional` records each event in the transaction of its effect;
a redelivered event finds its row and is skipped.

>>> with writer(engine).begin() as conn:  # doctest: +SKIP
...     if mark_processed(conn, "monitor", event.id):
...         apply(event, conn)
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from maestrale.platform.clock import utcnow
from maestrale.platform.tables import processed_events


def already_processed(conn: Connection, consumer: str, event_id: str) -> bool:
    """True when `consumer` already applied `event_id` (read inside the effect's transaction)."""
    q = select(processed_events.c.event_id).where(
        processed_events.c.consumer == consumer, processed_events.c.event_id == event_id
    )
    return conn.execute(q).first() is not None


def mark_processed(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record `event_id` as applied by `consumer` in the caller's transaction; False if it already was.

    Call it first in the transaction of the effect: `if not mark_processed(conn, "monitor", ev.id):
    return`. Concurrent duplicates queue on the primary key, so exactly one of them gets True.
    """
    row = {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        dialect_insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = dialect_insert(processed_events).values(**row).on_conflict_do_nothing()
        # RETURNING, not rowcount: psycopg 3 under SQLAlchemy 2.1 reports rowcount -1 for this insert,
        # which made every event look like a duplicate on PostgreSQL
        return conn.execute(stmt.returning(processed_events.c.event_id)).first() is not None
    if already_processed(conn, consumer, event_id):
        return False
    conn.execute(insert(processed_events).values(**row))
    return True
