"""monitoring: breach episodes, training outcomes in the monitor's state

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 19:30:00

Repeated breaches of one condition become one episode (`monitor_episodes`, linked from each breach
by `episode_id`). The monitor's state records the outcome of its retraining request, learnt from
`train.completed` / `train.failed`, and the pairs a challenger needs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_episodes",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("policy", sa.String(length=128), nullable=False),
        sa.Column("condition", sa.String(length=128), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clear_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_value", sa.Float(), nullable=False),
        sa.Column("peak_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peak_metric", sa.String(length=128), nullable=False),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("first_version", sa.Integer(), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_episodes", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_episodes_model", ["model", "started_at"], unique=False)
        batch_op.create_index("ix_monitor_episodes_open", ["model", "condition", "ended_at"], unique=False)
    with op.batch_alter_table("monitor_breaches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("episode_id", _BigId, nullable=True))
    with op.batch_alter_table("monitor_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retrain_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("retrain_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("challenger_min_samples", sa.Integer(), nullable=True))
    # a request made before this revision is still awaited: its outcome will come as an event
    op.execute("UPDATE monitor_state SET retrain_status = 'requested' WHERE last_retrain_request IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("monitor_state", schema=None) as batch_op:
        batch_op.drop_column("challenger_min_samples")
        batch_op.drop_column("retrain_note")
        batch_op.drop_column("retrain_status")
    with op.batch_alter_table("monitor_breaches", schema=None) as batch_op:
        batch_op.drop_column("episode_id")
    with op.batch_alter_table("monitor_episodes", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_episodes_open")
        batch_op.drop_index("ix_monitor_episodes_model")
    op.drop_table("monitor_episodes")
