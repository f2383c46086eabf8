"""monitoring: per-model leases, so several monitors share a fleet

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 07:00:00

One row per model in `monitor_leases`; the monitor evaluating a model holds its row locked
(`SELECT … FOR UPDATE SKIP LOCKED`) on PostgreSQL, see `maestrale.monitoring.leases`. Rows are created
on a model's first lease, so the table starts empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_leases",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("model"),
    )


def downgrade() -> None:
    op.drop_table("monitor_leases")
