"""The transactional outbox: events written with the change they announce, published later by the bus.

An event is a CloudEvents 1.0 dict; `add_event` must run inside the caller's write transaction so the
event exists if and only if the change committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from maestrale.registry import schema as s

EVENT_SOURCE = "maestrale/registry"
_INSERT_EVENT = insert(s.outbox)


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the store uses."""
    return datetime.now(UTC)


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def add_event(
    conn: Connection, type_: str, subject: str | None, data: dict[str, Any], source: str = EVENT_SOURCE
) -> str:
    """Write a CloudEvent into the outbox inside the caller's transaction; returns its id."""
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
            select(s.outbox).where(s.outbox.c.sent_at.is_(None)).order_by(s.outbox.c.id).limit(limit)
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
            conn.execute(update(s.outbox).where(s.outbox.c.event_id.in_(ids)).values(sent_at=utcnow()))
