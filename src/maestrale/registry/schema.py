"""SQL schema of the registry: models, versions, their key/value params, metrics and tags, aliases, lineage,
and the audit trails of alias moves and archiving.

The tables sit on the shared `maestrale.platform.tables.metadata`; Alembic
migrations under `maestrale/migrations` create them. Params, metrics and tags live in key/value
tables so search can filter on any key.

>>> versions.c.artifact_sha256.type.length
64
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from maestrale.platform.tables import metadata

#: The CloudEvents `source` of what the registry writes to the outbox.
EVENT_SOURCE = "maestrale/registry"

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("latest_version", Integer, nullable=False, default=0),
    Column("archived", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # ready | archived
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("artifact_key", String(512), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("artifact_format", String(32), nullable=False),
    Column("flavor", String(256), nullable=False),
    Column("input_schema", JSON, nullable=True),
    Column("data_fingerprint", String(128), nullable=True),
    Column("data_version", String(256), nullable=True),
    Column("code_version", String(128), nullable=True),
    Column("package_versions", JSON, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("parent_version", Integer, nullable=True),
    Column("reason", Text, nullable=True),
    Column("spec", JSON, nullable=True),
    Column("profile", JSON, nullable=True),
    # the holdout's forecast and actual, downsampled (`maestrale.registry.holdout`); NULL before 0008
    Column("holdout", JSON, nullable=True),
    # a retried request (redelivered training job, client retry) names itself: the same key never
    # makes a second version
    Column("idempotency_key", String(128), nullable=True),
    # the version's summary as a search returns it (JSON text, `maestrale.registry.hydrate`): written
    # at registration, rewritten when its tags, aliases or status change; NULL only inside that
    # transaction (and before the 0013 backfill)
    Column("search_doc", Text, nullable=True),
    UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    UniqueConstraint("model_id", "idempotency_key", name="uq_versions_model_idempotency"),
    Index("ix_versions_sha256", "artifact_sha256"),
    # a search's default order (newest first) within the ready versions, of one model or of all
    Index("ix_versions_model_status_created", "model_id", "status", "created_at", "id"),
    Index("ix_versions_status_created", "status", "created_at", "id"),
)

version_params = Table(
    "version_params",
    metadata,
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),  # JSON text, so 1 and "1" stay distinct
    Column("value_num", Float, nullable=True),  # numeric view for range filters
    Index("ix_version_params_key_num", "key", "value_num"),
)

version_metrics = Table(
    "version_metrics",
    metadata,
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_version_metrics_key_value", "key", "value"),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_tags_key_value", "key", "value"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=True),
    Index("ix_aliases_model_version", "model_id", "version"),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=True),  # NULL: the alias was removed
    Column("previous_version", Integer, nullable=True),
    Column("actor", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_alias_history_model_alias", "model_id", "alias"),
    Index("ix_alias_history_at", "at"),  # the audit trail reads every model's moves newest first
)

# Archive and unarchive of a version (or, with version NULL, of a whole model): who, when, why.
archive_history = Table(
    "archive_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=True),  # NULL: the model itself
    Column("action", String(16), nullable=False),  # archived | unarchived
    Column("actor", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_archive_history_at", "at"),
)

lineage = Table(
    "lineage",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), nullable=False),
    Column("relation", String(32), nullable=False),  # parent | dataset | ...
    Column("target", Text, nullable=False),
    Column("detail", JSON, nullable=True),
    Index("ix_lineage_version", "version_id"),
)
