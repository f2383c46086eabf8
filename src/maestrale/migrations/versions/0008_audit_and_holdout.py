"""registry and tokens: holdout series, archive history, who revoked a token

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 11:45:00

- `versions.holdout`: each new version stores its holdout's forecast and actual, downsampled to at
  most 1,000 points, and its backtest folds' periods (the web UI's holdout plots). Older versions
  keep NULL and say "retrain to get one".
- `archive_history`: archive and unarchive of versions and models, with actor and reason (before,
  only an outbox event said so, and the outbox is pruned).
- `tokens.revoked_by`: who revoked a token (the audit trail's actor); `created_at` indexed for it.
- `alias_history.at` indexed: the audit trail lists every model's alias moves newest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("holdout", sa.JSON(), nullable=True))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(length=128), nullable=True))
    op.create_index("ix_tokens_created_at", "tokens", ["created_at"])
    op.create_index("ix_alias_history_at", "alias_history", ["at"])
    op.create_table(
        "archive_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_archive_history_at", "archive_history", ["at"])


def downgrade() -> None:
    op.drop_index("ix_archive_history_at", table_name="archive_history")
    op.drop_table("archive_history")
    op.drop_index("ix_alias_history_at", table_name="alias_history")
    op.drop_index("ix_tokens_created_at", table_name="tokens")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("revoked_by")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("holdout")
