"""monitoring: the per-entity capacities the monitor judged a model with

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:00:00

`monitor_state.entity_capacity`: the capacities (entity -> kW) that the monitor's policy
(`capacity: {foggia: 950, …}`) gave the entities of a model's evaluated windows. The REST API has no
policy; with this column its live performance normalises each plant by the same capacity as the
monitor did. NULL until an evaluation with a policy that lists one of the model's entities.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_state") as batch:
        batch.add_column(sa.Column("entity_capacity", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_state") as batch:
        batch.drop_column("entity_capacity")
