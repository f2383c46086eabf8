"""SQL tables of the monitor: logged predictions, late actuals, evaluations, breaches, episodes, decisions.

They sit on the shared `maestrale.platform.tables.metadata` (one database, one Alembic history).
Times are stored in UTC; SQLite hands them back naive and `maestrale.platform.clock.aware` restores
the zone.

The indexes serve the two hot queries: "the predictions of model M whose target time falls in
[t0, t1)" (`ix_predictions_model_target`) and the join of each prediction with the actual of the
same entity and target time (the actuals' primary key). Nothing else is indexed on `predictions`:
each index costs every ingested record a write (see bench/ingest.py).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from maestrale.platform.tables import metadata

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

predictions = Table(
    "predictions",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("entity", String(128), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("target_time", DateTime(timezone=True), nullable=False),
    Column("horizon_s", Integer, nullable=False),
    # The point forecast (the median of quantile forecasts); NULL for labels, which live in `output`.
    Column("prediction", Float, nullable=True),
    Column("output", JSON, nullable=True),
    Column("features", JSON, nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model", "record_id", name="uq_predictions_model_record"),
    Index("ix_predictions_model_target", "model", "target_time"),
)

actuals = Table(
    "actuals",
    metadata,
    Column("entity", String(128), primary_key=True),
    Column("target_time", DateTime(timezone=True), primary_key=True),
    Column("value", Float, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

monitor_evaluations = Table(
    "monitor_evaluations",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # performance | drift
    Column("window", String(16), nullable=False),  # "7D"
    Column("as_of", DateTime(timezone=True), nullable=False),  # end of the window, in data time
    Column("n", Integer, nullable=False),
    Column("values", JSON, nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Index("ix_monitor_evaluations_series", "model", "kind", "window", "as_of"),
)

# The latest evaluation of each (model, kind, window), kept at write time: the fleet overview reads
# 1,000 models' latest figures by key instead of grouping a year of evaluations (1.5M rows: 0.7 s).
monitor_latest_evaluations = Table(
    "monitor_latest_evaluations",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("window", String(16), primary_key=True),
    Column("evaluation_id", _BigId, nullable=False),
    # a copy of the evaluation's header and the figures an overview reads (`records.summary_of`):
    # 1,000 models' latest rows without parsing their per-entity and per-horizon breakdowns
    Column("version", Integer, nullable=True),
    Column("as_of", DateTime(timezone=True), nullable=True),
    Column("n", Integer, nullable=True),
    Column("evaluated_at", DateTime(timezone=True), nullable=True),
    Column("summary", JSON, nullable=True),
)

monitor_breaches = Table(
    "monitor_breaches",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("policy", String(128), nullable=False),
    Column("condition", String(128), nullable=False),
    Column("metric", String(128), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("window", String(16), nullable=False),
    Column("n", Integer, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("actions", JSON, nullable=False),  # what fired: breach, retrain (+ request id), or why not
    Column("details", JSON, nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    # the episode this breach belongs to (`monitor_episodes.id`); NULL for breaches recorded before 0004
    Column("episode_id", _BigId, nullable=True),
    Index("ix_monitor_breaches_model", "model", "as_of"),
    # the audit trail reads breaches newest first across the fleet
    Index("ix_monitor_breaches_detected", "detected_at"),
)

# Consecutive breaches of one condition are one episode: one alert with a start, an end and a peak,
# instead of one row per evaluation (`maestrale.monitoring.episodes`).
monitor_episodes = Table(
    "monitor_episodes",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("policy", String(128), nullable=False),
    Column("condition", String(128), nullable=False),
    Column("window", String(16), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),  # as_of of its first breach
    Column("last_at", DateTime(timezone=True), nullable=False),  # as_of of its latest breach
    # first evaluation without the condition since `last_at` (the episode ends there once the gap passed)
    Column("clear_since", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),  # NULL while open
    Column("peak_value", Float, nullable=False),  # the worst value, in the condition's direction
    Column("peak_at", DateTime(timezone=True), nullable=False),
    Column("peak_metric", String(128), nullable=False),  # e.g. psi:ghi for drift
    Column("breaches", Integer, nullable=False),
    Column("first_version", Integer, nullable=False),
    Column("last_version", Integer, nullable=False),
    Column("actions", JSON, nullable=False),  # breach: bool; retrain: request ids, or why not
    Column("description", Text, nullable=False),  # of the peak breach
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_monitor_episodes_model", "model", "started_at"),
    Index("ix_monitor_episodes_open", "model", "condition", "ended_at"),
)

monitor_decisions = Table(
    "monitor_decisions",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("challenger_version", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # promoted | rejected | expired
    Column("reason", Text, nullable=False),
    Column("metric", String(32), nullable=False),
    Column("margin", Float, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=True),
    Column("window_end", DateTime(timezone=True), nullable=True),
    Column("n", Integer, nullable=False),
    Column("champion_metrics", JSON, nullable=False),
    Column("challenger_metrics", JSON, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model", "challenger_version", name="uq_monitor_decisions_challenger"),
    Index("ix_monitor_decisions_model", "model", "as_of"),
)

monitor_state = Table(
    "monitor_state",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("as_of", DateTime(timezone=True), nullable=True),  # data time of the last evaluation
    Column("last_retrain_at", DateTime(timezone=True), nullable=True),
    Column("last_retrain_request", String(64), nullable=True),
    # start of the challenger's out-of-sample window: the end of its training data
    Column("challenger_since", DateTime(timezone=True), nullable=True),
    # outcome of `last_retrain_request`, from train.completed / train.failed: requested | completed |
    # failed | lost (no outcome within the promotion's max_wait); with what it gave or why it failed
    Column("retrain_status", String(16), nullable=True),
    Column("retrain_note", Text, nullable=True),
    Column("challenger_min_samples", Integer, nullable=True),  # the policy's promotion.min_samples
    # entity -> capacity the policy gave the model's evaluated entities: the REST API, which has no
    # policy, normalises live figures with them too (`performance.stored_capacities`)
    Column("entity_capacity", JSON, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per model, locked (`SELECT … FOR UPDATE SKIP LOCKED`) by the monitor evaluating it, so several
# monitors share a fleet on PostgreSQL (`maestrale.monitoring.leases`). The lock is the lease; the
# columns only say who took it last.
monitor_leases = Table(
    "monitor_leases",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("holder", String(128), nullable=True),  # host:pid of the monitor that took it last
    Column("taken_at", DateTime(timezone=True), nullable=True),
)

# The monitor's side of each retraining it asked for (`maestrale.monitoring.retraining`): written with
# its `train.requested` event, updated from `train.completed` / `train.failed`. The monitor never reads
# the training service's tables: this is all it knows. One row per request (a cooldown apart).
monitor_retrainings = Table(
    "monitor_retrainings",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("parent_version", Integer, nullable=True),  # the champion it retrains
    Column("reason", Text, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),  # the monitor's clock: where its data ends
    Column("status", String(16), nullable=False),  # requested | completed | failed | lost
    Column("version", Integer, nullable=True),  # what a completed retraining registered
    Column("error", Text, nullable=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_monitor_retrainings_model", "model", "requested_at"),
)
