"""registry: each version's search document stored with it, and the indexes a search orders by

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 17:30:00

A search built each hit's JSON document from five tables (params, metrics, tags, aliases by
correlated subqueries) at query time. A version is immutable except its tags, aliases and status,
so its summary is now built when it is written and stored in `versions.search_doc` (the writers of
tags, aliases and status rewrite it); a search reads that column and passes it through. This fills
it for existing versions with the same SQL the store runs (`maestrale.registry.hydrate`), and
indexes (model, status, created_at, id) and (status, created_at, id): the default order, newest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from maestrale.registry.hydrate import refresh_statements

    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("search_doc", sa.Text(), nullable=True))
    op.create_index(
        "ix_versions_model_status_created", "versions", ["model_id", "status", "created_at", "id"]
    )
    op.create_index("ix_versions_status_created", "versions", ["status", "created_at", "id"])
    bind = op.get_bind()
    bind.execute(refresh_statements(bind.dialect.name)["every"])


def downgrade() -> None:
    op.drop_index("ix_versions_status_created", table_name="versions")
    op.drop_index("ix_versions_model_status_created", table_name="versions")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("search_doc")
