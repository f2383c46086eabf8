"""Training endpoints: submit a spec (a fleet fans out to one request per member) and follow it.

A submitted spec is untrusted data. It arrives as JSON (`spec`) or YAML text (`yaml`), never as a
path: the server reads none of its own files for it. It is validated (bounded YAML, estimator and
feature-set references checked against the server's `estimator_modules`, data sources against
`data_sources` and `spec_env`) before anything is queued, and every problem comes back as one 400
listing each issue. The worker checks again before it reads anything: that check is authoritative.

>>> httpx.post(f"{url}/api/v1/trainings", headers=auth,
...            json={"yaml": Path("pv.yaml").read_text(), "reason": "new plant"})  # doctest: +SKIP
>>> httpx.post(f"{url}/api/v1/trainings/{request_id}/cancel", headers=auth)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from maestrale.api.auth import Read, Write
from maestrale.errors import InvalidInput, NotFound
from maestrale.training.requests import Status, TrainingRecord, TrainingRequests

if TYPE_CHECKING:
    from maestrale.config import Settings
    from maestrale.training.spec import TrainingSpec

router = APIRouter(prefix="/api/v1/trainings", tags=["training"])


class TrainingSubmit(BaseModel):
    """A spec as JSON (`spec`) or as the YAML text of a spec file (`yaml`), and why it is trained."""

    spec: dict[str, Any] | None = Field(default=None, description="The spec as a JSON object.")
    yaml: str | None = Field(
        default=None, description="The YAML text of a spec file (never a path), validated with line numbers."
    )
    reason: str = Field(default="manual", max_length=500)
    parent_version: int | None = Field(default=None, ge=1, le=2**31 - 1)  # an INTEGER column
    idempotency_key: str | None = Field(
        default=None, max_length=100, description="Resubmitting with the same key trains once."
    )


def training_requests(request: Request) -> TrainingRequests:
    """The app's training requests store (opened once; the web UI's trainings page reads the same)."""
    state = request.app.state
    if getattr(state, "trainings", None) is None:
        state.trainings = TrainingRequests(state.settings.database_url, state.settings.auto_upgrade)
    return state.trainings


@router.post("", response_model=list[TrainingRecord], status_code=202, dependencies=[Write])
def submit(request: Request, body: TrainingSubmit) -> list[TrainingRecord]:
    """Queue a training (one request per fleet member); workers pick them up from the bus."""
    if (body.spec is None) == (body.yaml is None):
        raise InvalidInput("send exactly one of 'spec' (JSON object) or 'yaml' (the spec file's text)")
    members, fleet = checked_members(body, request.app.state.settings)
    actor = getattr(request.state, "actor", None)
    return training_requests(request).submit_members(
        members, fleet=fleet, reason=body.reason, parent_version=body.parent_version, requested_by=actor,
        idempotency_key=body.idempotency_key,
    )  # fmt: skip


def checked_members(body: TrainingSubmit, settings: Settings) -> tuple[list[TrainingSpec], bool]:
    """The submitted spec's members, validated under the server's settings; `SpecError` (400) if not.

    Returns `(members, is_fleet)`. Nothing here reads a file or imports code a spec names; the
    data-source policy only resolves the symlinks of local paths, as the worker will.
    """
    from maestrale.limits import json_problem, text_problem
    from maestrale.training.coderefs import trusted_modules
    from maestrale.training.source_policy import SourcePolicy
    from maestrale.training.specio import members_of, parse_spec, spec_from_data

    source = "in the request's " + ("yaml" if body.yaml is not None else "spec")
    with trusted_modules(settings.estimator_modules):
        if body.yaml is not None:
            spec = parse_spec(body.yaml, source=source)
        else:
            spec = spec_from_data(body.spec, source=source)
        members = members_of(spec, source)
    # what the request row and the event will hold must be storable JSON on both databases
    # (PostgreSQL refuses NaN/Infinity in JSON and NUL in text; SQLite stores them and then breaks readers)
    for i, member in enumerate(members):
        where = "spec" if len(members) == 1 else f"spec (fleet member {i})"
        if problem := json_problem(member.model_dump(mode="json", exclude_none=True), where):
            raise InvalidInput(problem)
    for what, text in (("reason", body.reason), ("idempotency_key", body.idempotency_key or "")):
        if problem := text_problem(text, what):
            raise InvalidInput(problem)
    # an early 400, every member's problems at once; the worker applies the same policy before it reads
    SourcePolicy.from_settings(settings).check(spec, source)
    return members, spec.fleet is not None


class FleetProgress(BaseModel):
    """One fleet submission: its members per status."""

    fleet_id: str
    created_at: datetime
    total: int
    counts: dict[str, int]
    requested_by: str | None = None


class TrainingSummary(BaseModel):
    """Requests per status, and the newest fleets' progress (what the web UI's trainings page shows)."""

    counts: dict[str, int]
    fleets: list[FleetProgress]


@router.get("/summary", response_model=TrainingSummary, dependencies=[Read])
def summary(
    request: Request,
    name: str | None = Query(None, max_length=128, description="Only this model's requests."),
    fleets: Annotated[int, Query(ge=1, le=100, description="How many of the newest fleets.")] = 10,
) -> TrainingSummary:
    """How many requests are queued, started, completed, failed, cancelled; the newest fleets' progress.

    >>> httpx.get(f"{url}/api/v1/trainings/summary", headers=auth).json()["counts"]  # doctest: +SKIP
    {'queued': 2, 'started': 1, 'completed': 40, 'failed': 1, 'cancelled': 0}
    """
    store = training_requests(request)
    return TrainingSummary(
        counts=store.counts(name=name or None),
        fleets=[FleetProgress(**f) for f in store.fleets(limit=fleets, name=name or None)],
    )


@router.get("/{request_id}", response_model=TrainingRecord, dependencies=[Read])
def get(request: Request, request_id: str) -> TrainingRecord:
    """Where one request stands: queued, started, completed (with its version), failed or cancelled (why).

    `request_id` may be a unique prefix of at least 6 characters; a fleet's members are listed by
    `GET /api/v1/trainings?fleet_id=…`.
    """
    records = training_requests(request).find(request_id)
    named = [r for r in records if r.id.lower().startswith(request_id.strip().lower())]
    if len(named) != 1:
        raise NotFound(
            f"{request_id!r} is a fleet of {len(records)} request(s): list them with "
            f"GET /api/v1/trainings?fleet_id={records[0].fleet_id}"
        )
    return named[0]


@router.post("/{request_id}/cancel", response_model=list[TrainingRecord], dependencies=[Write])
def cancel(request: Request, request_id: str) -> list[TrainingRecord]:
    """Cancel a queued or started request, or every unfinished member of a fleet; returns them.

    A queued request is never trained; a started one is stopped by its worker within seconds
    (`train.failed` with the error "cancelled" either way). 409 when it already finished.
    """
    actor = getattr(request.state, "actor", None)
    return training_requests(request).cancel(request_id, by=actor)


@router.get("", response_model=list[TrainingRecord], dependencies=[Read])
def list_(
    request: Request,
    fleet_id: str | None = None,
    name: str | None = None,
    status: Annotated[Status | None, Query(description="Only requests in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TrainingRecord]:
    """Requests, newest first; filter by fleet, model or status."""
    return training_requests(request).list(fleet_id=fleet_id, name=name, status=status, limit=limit)
