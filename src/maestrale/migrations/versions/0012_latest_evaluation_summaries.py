"""monitoring: each latest-evaluation pointer carries its evaluation's header and summary

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 12:20:00

The fleet overview read 1,000 models' latest evaluations with their whole values (per-entity and
per-horizon breakdowns included) to show a few overall figures. The pointer rows now carry the
version, data time, sample count, evaluation time and a summary; this fills them for existing rows
(with the whole values: the monitor writes the smaller summary from now on).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COPIED = {
    "version": "version",
    "as_of": "as_of",
    "n": "n",
    "evaluated_at": "evaluated_at",
    "summary": '"values"',
}


def upgrade() -> None:
    with op.batch_alter_table("monitor_latest_evaluations") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("as_of", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("n", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("summary", sa.JSON(), nullable=True))
    sets = ", ".join(
        f"{target} = (SELECT e.{source} FROM monitor_evaluations e WHERE e.id = l.evaluation_id)"
        for target, source in COPIED.items()
    )
    op.execute(f"UPDATE monitor_latest_evaluations AS l SET {sets}")


def downgrade() -> None:
    with op.batch_alter_table("monitor_latest_evaluations") as batch:
        for column in ("summary", "evaluated_at", "n", "as_of", "version"):
            batch.drop_column(column)
