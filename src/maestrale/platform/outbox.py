"""The transactional outbox: events written with the change they announce, published later by the bus.

An event is a CloudEvents 1.0 dict; `add_event` must run inside the caller's write transaction so the
event exists if and only if the change committed. Any component with a database writes to it (the
registry, training requests, the monitor); `maestrale.bus.relay` publishes it.

>>> with writer(engine).begin() as conn:  # doctest: +SKIP
...     add_event(conn, "maestrale.model.archived", "pv", {"name": "pv"}, source="maestrale/registry")
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from maestrale.platform.clock import aware, utcnow
from maestrale.platform.tables import outbox

_INSERT_EVENT = insert(outbox)


def add_event(conn: Connection, type_: str, subject: str | None, data: dict[str, Any], *, source: str) -> str:
    """Write a CloudEvent into the outbox inside the caller's transaction; returns its id.

    `source` names the producer (`maestrale/registry`, `maestrale/monitor`, ...), as CloudEvents asks.
    """
    event_id = str(uuid.uuid4())
    conn.execute(
        _INSERT_EVENT,
        {
            "event_id": event_id,
            "type": type_,
            "source": source,
            "subject": subject,
            "time": utcnow(),
            "data": data,
            "attempts": 0,
        },
    )
    return event_id


def pending_events(engine: Engine, limit: int = 500) -> list[dict[str, Any]]:
    """Unsent events, oldest first, as CloudEvents dicts."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(limit)
        ).all()
    return [
        {
            "specversion": "1.0",
            "id": r.event_id,
            "source": r.source,
            "type": r.type,
            "subject": r.subject,
            "time": aware(r.time).isoformat(),
            "datacontenttype": "application/json",
            "data": r.data,
        }
        for r in rows
    ]


def mark_sent(engine: Engine, event_ids: Iterable[str]) -> None:
    """Mark events as published (only after the broker confirmed them)."""
    ids = list(event_ids)
    if ids:
        with engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.event_id.in_(ids)).values(sent_at=utcnow()))
