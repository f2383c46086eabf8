"""Training endpoints: submit a spec (a fleet fans out to one request per member) and follow it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from maestrale.api.auth import Read, Write
from maestrale.errors import InvalidInput
from maestrale.training.requests import TrainingRecord, TrainingRequests

router = APIRouter(prefix="/api/v1/trainings", tags=["training"])


class TrainingSubmit(BaseModel):
    """A spec as JSON (`spec`) or as the YAML text of a spec file (`yaml`), and why it is trained."""

    spec: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, description="The YAML spec text, validated with line numbers.")
    reason: str = "manual"
    parent_version: int | None = Field(default=None, ge=1)
    idempotency_key: str | None = Field(
        default=None, max_length=100, description="Resubmitting with the same key trains once."
    )


def _requests(request: Request) -> TrainingRequests:
    state = request.app.state
    if getattr(state, "trainings", None) is None:
        state.trainings = TrainingRequests(state.settings.database_url, state.settings.auto_upgrade)
    return state.trainings


@router.post("", response_model=list[TrainingRecord], status_code=202, dependencies=[Write])
def submit(request: Request, body: TrainingSubmit) -> list[TrainingRecord]:
    """Queue a training (one request per fleet member); workers pick them up from the bus."""
    from maestrale.training.spec import load_spec

    if (body.spec is None) == (body.yaml is None):
        raise InvalidInput("send exactly one of 'spec' (JSON object) or 'yaml' (the spec file's text)")
    spec: Any = load_spec(body.yaml) if body.yaml is not None else body.spec
    actor = getattr(request.state, "actor", None)
    return _requests(request).submit(
        spec, reason=body.reason, parent_version=body.parent_version, requested_by=actor,
        idempotency_key=body.idempotency_key,
    )  # fmt: skip


@router.get("/{request_id}", response_model=TrainingRecord, dependencies=[Read])
def get(request: Request, request_id: str) -> TrainingRecord:
    """Where one request stands: queued, started, completed (with its version) or failed (with why)."""
    return _requests(request).get(request_id)


@router.get("", response_model=list[TrainingRecord], dependencies=[Read])
def list_(
    request: Request,
    fleet_id: str | None = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TrainingRecord]:
    """Requests, newest first; filter by fleet or model."""
    return _requests(request).list(fleet_id=fleet_id, name=name, limit=limit)
