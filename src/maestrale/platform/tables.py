"""The shared SQL metadata and the infrastructure tables: the event outbox and the processed-events ledger.

Every component declares its own tables on `metadata` in its own module (`maestrale.registry.schema`,
`maestrale.training.tables`, `maestrale.monitoring.schema`, `maestrale.tokens`); the one Alembic
history (`maestrale/migrations`) creates them all.

>>> sorted(t for t in metadata.tables if t in ("outbox", "processed_events"))
['outbox', 'processed_events']
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

# Events written in the transaction of the change they announce (`maestrale.platform.outbox`),
# published later by the relay (`maestrale.bus.relay`).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(128), nullable=False),
    Column("source", String(256), nullable=False),
    Column("subject", String(128), nullable=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_outbox_unsent", "sent_at", "id"),
)

# Events a bus consumer has applied (`maestrale.platform.ledger`): recording one in the transaction of
# its effect makes an at-least-once delivery take effect once.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(128), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Index("ix_processed_events_at", "processed_at"),
)
