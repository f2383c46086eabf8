"""monitoring: a pointer to the latest evaluation of each (model, kind, window)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 11:40:00

The fleet overview (the web UI's fleet page, GET /api/v1/fleet, /monitoring/models) read each
model's latest figures by grouping every stored evaluation: 0.7 s on 1,000 models x a year. The
monitor now keeps a pointer per (model, kind, window) in the transaction that stores an evaluation;
this migration fills it from the history (the newest row of each group, as before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "monitor_latest_evaluations",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("evaluation_id", big_id, nullable=False),
        sa.PrimaryKeyConstraint("model", "kind", "window"),
    )
    op.execute(
        'INSERT INTO monitor_latest_evaluations (model, kind, "window", evaluation_id) '
        'SELECT model, kind, "window", MAX(id) FROM monitor_evaluations GROUP BY model, kind, "window"'
    )


def downgrade() -> None:
    op.drop_table("monitor_latest_evaluations")
