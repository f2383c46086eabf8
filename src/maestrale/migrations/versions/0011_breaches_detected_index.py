"""monitoring: breaches indexed by the time they were recorded

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 12:00:00

The audit trail (the web UI's Audit page, GET /api/v1/audit) lists breaches newest first across the
fleet; without this index that is a scan and a sort of every breach ever recorded.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_monitor_breaches_detected", "monitor_breaches", ["detected_at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_breaches_detected", table_name="monitor_breaches")
