"""monitoring: the retrainings the monitor asked for, and their outcomes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:00:00

The monitor and the training service talk over the bus only: the monitor writes `train.requested` to
its outbox with a row in `monitor_retrainings`, and records there what `train.completed` /
`train.failed` say. It no longer submits or reads rows of `trainings`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_retrainings",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_monitor_retrainings_model", "monitor_retrainings", ["model", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_retrainings_model", table_name="monitor_retrainings")
    op.drop_table("monitor_retrainings")
