"""SQL table of the training service: one row per training request, tracked by status.

On the shared `maestrale.platform.tables.metadata`; the one Alembic history creates it.

>>> trainings.c.status.type.length
16
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, Text

from maestrale.platform.tables import metadata

trainings = Table(
    "trainings",
    metadata,
    Column("id", String(64), primary_key=True),  # the request id
    Column("name", String(128), nullable=False),
    Column("fleet_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),  # queued | started | completed | failed | cancelled
    Column("spec", JSON, nullable=False),
    Column("reason", Text, nullable=True),
    Column("parent_version", Integer, nullable=True),
    Column("requested_by", String(128), nullable=True),
    Column("worker", String(128), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_trainings_fleet", "fleet_id"),
    Index("ix_trainings_name_created", "name", "created_at"),
)
