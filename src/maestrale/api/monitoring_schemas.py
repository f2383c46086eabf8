"""Request and response bodies of the monitoring endpoints (`maestrale.api.monitoring`).

>>> PredictionBatch(model="pv-nrel-50", version=3, records=[]).version
3
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class PredictionBatch(BaseModel):
    """Predictions of one registered version; each record is validated on its own (see `rejected`)."""

    model: str = Field(description="Registered model name, e.g. pv-nrel-50.")
    version: int = Field(ge=1, le=2**31 - 1, description="The registry version that made the predictions.")
    # dicts, not PredictionRecord: one bad record must be reported with its reason, not fail the batch
    records: list[dict[str, Any]] = Field(
        description="record_id, entity, issued_at, target_time (ISO 8601 with a time zone), "
        "optional horizon, features (the model inputs) and prediction (number, quantiles or label)."
    )


class ActualBatch(BaseModel):
    """Observed values; a second value for the same entity and target time replaces the first."""

    records: list[dict[str, Any]] = Field(
        description="entity, target_time (ISO 8601 with a time zone) and value (a finite number)."
    )


class Rejected(BaseModel):
    """A record that was not stored: its index in the batch, its id if it had one, and why."""

    index: int
    record_id: str | None = None
    reason: str


class IngestResponse(BaseModel):
    """What happened to a batch."""

    stored: int = Field(description="Records stored now.")
    duplicates: int = Field(description="Records already stored by an earlier call (not stored twice).")
    rejected: list[Rejected] = Field(default_factory=list)


class EvaluationPoint(BaseModel):
    """One evaluation: the window ending at `as_of` (data time), its pairs `n` and its figures."""

    as_of: datetime
    version: int
    window: str
    n: int
    values: dict[str, Any] = Field(
        description="Performance: overall, by_entity, by_horizon, training, ratios. "
        "Drift: features and per-feature stats (psi, ks, wasserstein_norm, js)."
    )


class EvaluationSeries(BaseModel):
    """Stored evaluations of a model, oldest first (`live`: one computed now, not stored)."""

    model: str
    kind: Literal["performance", "drift"]
    window: str | None = None
    live: bool = False
    items: list[EvaluationPoint]


class WindowPerformance(BaseModel):
    """The latest performance evaluation over one window."""

    version: int
    as_of: datetime
    n: int
    overall: dict[str, float]
    ratios: dict[str, float] = Field(default_factory=dict, description="Production / training.")
    training: dict[str, float] = Field(default_factory=dict)


class ModelStatus(BaseModel):
    """Where a monitored model stands."""

    model: str
    serving_version: int | None = Field(description="The champion, else the latest logged version.")
    champion: int | None = None
    challenger: int | None = Field(None, description="A retrained version waiting for its decision.")
    challenger_since: datetime | None = None
    as_of: datetime | None = Field(None, description="Data time of the latest evaluation.")
    evaluated_at: datetime | None = Field(None, description="Wall time of the latest evaluation.")
    performance: dict[str, WindowPerformance] = Field(default_factory=dict, description="By window.")
    open_breaches: int = Field(description="Conditions that fired at the latest evaluation.")
    firing: list[str] = Field(default_factory=list, description="Their names, e.g. ['shortfall'].")
    breaches_total: int
    last_retrain_at: datetime | None = None
    last_retrain_request: str | None = None


class BreachOut(BaseModel):
    """A condition that fired, with the numbers behind it and what the monitor did."""

    id: int
    model: str
    version: int
    policy: str
    condition: str
    metric: str
    value: float
    threshold: float
    window: str
    n: int
    as_of: datetime
    actions: dict[str, Any]
    details: dict[str, Any]
    detected_at: datetime


class DecisionOut(BaseModel):
    """A champion/challenger decision with the figures of both on the same out-of-sample rows."""

    id: int
    model: str
    champion_version: int | None
    challenger_version: int
    outcome: str
    reason: str
    metric: str
    margin: float
    window_start: datetime | None
    window_end: datetime | None
    n: int
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    as_of: datetime
    decided_at: datetime
