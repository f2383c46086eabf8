"""monitoring: predictions, actuals, evaluations, breaches, decisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:11:44.231529
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actuals",
        sa.Column("entity", sa.String(length=128), nullable=False),
        sa.Column("target_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity", "target_time"),
    )
    op.create_table(
        "monitor_breaches",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=128), nullable=False),
        sa.Column("condition", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_breaches", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_breaches_model", ["model", "as_of"], unique=False)

    op.create_table(
        "monitor_decisions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("challenger_version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("champion_metrics", sa.JSON(), nullable=False),
        sa.Column("challenger_metrics", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "challenger_version", name="uq_monitor_decisions_challenger"),
    )
    with op.batch_alter_table("monitor_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_decisions_model", ["model", "as_of"], unique=False)

    op.create_table(
        "monitor_evaluations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitor_evaluations_series", ["model", "kind", "window", "as_of"], unique=False
        )

    op.create_table(
        "monitor_state",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_retrain_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_retrain_request", sa.String(length=64), nullable=True),
        sa.Column("challenger_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model"),
    )
    op.create_table(
        "predictions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("entity", sa.String(length=128), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon_s", sa.Integer(), nullable=False),
        sa.Column("prediction", sa.Float(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "record_id", name="uq_predictions_model_record"),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index("ix_predictions_model_target", ["model", "target_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_model_target")

    op.drop_table("predictions")
    op.drop_table("monitor_state")
    with op.batch_alter_table("monitor_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_evaluations_series")

    op.drop_table("monitor_evaluations")
    with op.batch_alter_table("monitor_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_decisions_model")

    op.drop_table("monitor_decisions")
    with op.batch_alter_table("monitor_breaches", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_breaches_model")

    op.drop_table("monitor_breaches")
    op.drop_table("actuals")
