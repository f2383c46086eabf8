"""Typed, versioned payloads (the CloudEvent `data`) of every Maestrale event type.

Each payload class names its event `type` and `schema_version`; `EVENT_TYPES` maps the type to the
class. Payloads ignore unknown fields (additive changes stay v1); a breaking change gets a new
class with `schema_version = 2` and a new `dataschema` URN.

>>> from maestrale.bus.schemas import EVENT_TYPES
>>> EVENT_TYPES["maestrale.train.requested"].dataschema()
'urn:maestrale:event:train.requested:v1'

`python -m maestrale.bus.schemas --markdown` prints the JSON Schemas for docs/events.md
(`--write docs/events.md` replaces the generated part of that file in place).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass


class EventPayload(BaseModel):
    """Base of every payload: the event type it travels as and its schema version."""

    model_config = ConfigDict(extra="ignore")
    type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def dataschema(cls) -> str:
        """The CloudEvents `dataschema` URN, e.g. `urn:maestrale:event:train.requested:v1`."""
        return schema_urn(cls.type, cls.schema_version)


def schema_urn(type_: str, version: int = 1) -> str:
    """`maestrale.train.requested`, 1 → `urn:maestrale:event:train.requested:v1`."""
    return f"urn:maestrale:event:{type_.removeprefix('maestrale.')}:v{version}"


# -- training -------------------------------------------------------------------------------------
class TrainRequested(EventPayload):
    """Ask the training service to train a model from a declarative spec (subject: the model name)."""

    type: ClassVar[str] = "maestrale.train.requested"
    request_id: str = Field(min_length=1, description="Unique id of this request (a UUID is fine).")
    idempotency_key: str = Field(
        min_length=1, description="Requests with the same key train once; reuse it when you resend."
    )
    spec: dict[str, Any] = Field(description="The TrainingSpec as a JSON object.")
    reason: str = Field(default="manual", description="Why: manual, schedule, drift, breach, ...")
    parent_version: int | None = Field(default=None, ge=1, description="Version this retrains, if any.")
    requested_by: str | None = Field(default=None, description="User or service that asked.")
    fleet_id: str | None = Field(default=None, description="Groups requests of one fleet-wide retrain.")
    reuse_unchanged: bool = Field(
        default=False,
        description="If a ready version of the model was trained from the same spec, data and code, "
        "report it (train.completed with reused: true) instead of training a copy.",
    )


class TrainStarted(EventPayload):
    """A worker took a training request."""

    type: ClassVar[str] = "maestrale.train.started"
    request_id: str = Field(min_length=1)
    worker: str = Field(description="Worker id (host/pod and pid).")
    attempt: int = Field(ge=1, description="1 on the first delivery, higher on retries.")


class TrainCompleted(EventPayload):
    """Training finished and the version is registered."""

    type: ClassVar[str] = "maestrale.train.completed"
    request_id: str = Field(min_length=1)
    name: str
    version: int = Field(ge=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    duration_s: float = Field(ge=0)
    reused: bool = Field(
        default=False,
        description="True when nothing was trained: `version` already had this spec, data and code "
        "(a request with reuse_unchanged).",
    )


class TrainFailed(EventPayload):
    """Training failed for good (after its retries)."""

    type: ClassVar[str] = "maestrale.train.failed"
    request_id: str = Field(min_length=1)
    error: str
    error_type: str = Field(description="Exception class name, e.g. ValueError.")
    worker: str
    attempts: int = Field(ge=1)


# -- registry (written by the registry's transactional outbox) ---------------------------------------
class ModelRegistered(EventPayload):
    """A new immutable version was recorded (subject: the model name)."""

    type: ClassVar[str] = "maestrale.model.registered"
    name: str
    version: int = Field(ge=1)
    sha256: str = Field(description="sha256 of the artifact bytes.")
    format: str = Field(description="Artifact format: skops, lightgbm, xgboost, onnx, ...")
    flavor: str = Field(description="Python class of the model.")
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    parent_version: int | None = None
    reason: str | None = None
    created_by: str | None = None


class AliasChange(EventPayload):
    """An alias now points at `version` (`previous_version` is where it pointed before, if anywhere)."""

    type: ClassVar[str] = "maestrale.model.alias_set"
    name: str
    alias: str
    version: int = Field(ge=1)
    previous_version: int | None = None
    actor: str | None = None
    reason: str | None = None


class ModelAliasSet(AliasChange):
    """Any alias was set or moved."""


class ModelPromoted(AliasChange):
    """The `champion` alias moved to another version: servers reload on this one."""

    type: ClassVar[str] = "maestrale.model.promoted"


class ModelArchived(EventPayload):
    """A model was hidden from listings."""

    type: ClassVar[str] = "maestrale.model.archived"
    name: str
    actor: str | None = None


class ModelVersionArchived(EventPayload):
    """One version was archived (it stays loadable by exact reference)."""

    type: ClassVar[str] = "maestrale.model.version_archived"
    name: str
    version: int = Field(ge=1)
    actor: str | None = None


class ModelUnarchived(EventPayload):
    """An archived model was listed again (its archived versions stay archived)."""

    type: ClassVar[str] = "maestrale.model.unarchived"
    name: str
    actor: str | None = None
    reason: str | None = None


class ModelVersionUnarchived(EventPayload):
    """An archived version is ready again: listed, and able to take an alias."""

    type: ClassVar[str] = "maestrale.model.version_unarchived"
    name: str
    version: int = Field(ge=1)
    actor: str | None = None
    reason: str | None = None


class ModelAliasDeleted(EventPayload):
    """An alias was removed."""

    type: ClassVar[str] = "maestrale.model.alias_deleted"
    name: str
    alias: str
    previous_version: int | None = None
    actor: str | None = None


# -- production data ---------------------------------------------------------------------------------
# Records are slotted pydantic dataclasses, not BaseModels: half the validation time and far fewer
# objects for the garbage collector, which matters at 1,000 records per event.
@dataclass(slots=True, kw_only=True, config=ConfigDict(extra="ignore"))
class PredictionRecord:
    """One prediction a model made for one entity (plant, farm, zone) and one target time."""

    record_id: str = Field(min_length=1, description="Unique id; actuals join on entity + target_time.")
    entity: str = Field(description="Plant, farm or zone id.")
    issued_at: AwareDatetime = Field(description="When the forecast was made.")
    target_time: AwareDatetime = Field(description="The time the forecast is for.")
    horizon: timedelta | None = Field(
        default=None, description="Lead time as ISO 8601 (PT1H) or seconds; None: target_time - issued_at."
    )
    features: dict[str, Any] = Field(default_factory=dict, description="Model inputs, by name.")
    prediction: float | list[float] | str = Field(description="Point forecast, quantiles, or a label.")


class PredictionLogged(EventPayload):
    """A batch of predictions of one model version (subject: the model name)."""

    type: ClassVar[str] = "maestrale.prediction.logged"
    model: str
    version: int = Field(ge=1)
    records: list[PredictionRecord] = Field(min_length=1)
    logged_by: str | None = Field(
        default=None,
        description=(
            "Name of the bearer token whose requests these predictions answered, when a model server "
            "(`maestrale serve`) checked one; absent otherwise. Traces a logged forecast to its caller."
        ),
    )


@dataclass(slots=True, kw_only=True, config=ConfigDict(extra="ignore"))
class ActualRecord:
    """An observed value of the target, arriving late."""

    entity: str
    target_time: AwareDatetime
    value: float


class ActualLogged(EventPayload):
    """A batch of observed actuals (not tied to a model: every model of the entity joins them)."""

    type: ClassVar[str] = "maestrale.actual.logged"
    records: list[ActualRecord] = Field(min_length=1)


class MonitorBreach(EventPayload):
    """A monitoring policy found a model version out of bounds (subject: the model name)."""

    type: ClassVar[str] = "maestrale.monitor.breach"
    model: str
    version: int = Field(ge=1)
    policy: str = Field(description="Name of the policy that fired.")
    metric: str = Field(description="e.g. nmae, rmse, psi:ghi")
    value: float
    threshold: float
    window: str = Field(description="ISO 8601 interval (start/end) or duration (P7D) the value covers.")


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.type: cls
    for cls in (
        TrainRequested,
        TrainStarted,
        TrainCompleted,
        TrainFailed,
        ModelRegistered,
        ModelAliasSet,
        ModelPromoted,
        ModelArchived,
        ModelVersionArchived,
        ModelUnarchived,
        ModelVersionUnarchived,
        ModelAliasDeleted,
        PredictionLogged,
        ActualLogged,
        MonitorBreach,
    )
}


def _first_line(doc: str | None) -> str:
    """The summary line of a docstring ("" for a class without one)."""
    return doc.splitlines()[0] if doc else ""


def markdown() -> str:
    """The schema reference of every event type, as Markdown with JSON Schema blocks."""
    parts = ["| type | dataschema | payload |", "|---|---|---|"]
    parts += [f"| `{t}` | `{c.dataschema()}` | {_first_line(c.__doc__)} |" for t, c in EVENT_TYPES.items()]
    for type_, cls in EVENT_TYPES.items():
        schema = cls.model_json_schema()
        parts += [
            "",
            f"### `{type_}`",
            "",
            cls.__doc__ or "",
            "",
            "```json",
            json.dumps(schema, indent=2),
            "```",
        ]
    return "\n".join(parts) + "\n"


_START, _END = "<!-- schemas:start -->", "<!-- schemas:end -->"


def write_markdown(path: Path) -> bool:
    """Replace the generated part (between the schemas markers) of `path`; True when it changed."""
    text = path.read_text()
    head, _, rest = text.partition(_START)
    _, _, tail = rest.partition(_END)
    new = f"{head}{_START}\n{markdown()}{_END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> None:
    """`python -m maestrale.bus.schemas --markdown` (or `--write docs/events.md`)."""
    p = argparse.ArgumentParser(description="Print or write the JSON Schemas of Maestrale's events.")
    p.add_argument("--markdown", action="store_true", help="print the Markdown schema reference")
    p.add_argument("--write", type=Path, help="replace the generated part of this Markdown file")
    args = p.parse_args(argv)
    if args.write:
        print(f"{args.write}: {'updated' if write_markdown(args.write) else 'up to date'}")
    elif args.markdown:
        sys.stdout.write(markdown())
    else:
        print(json.dumps({t: c.model_json_schema() for t, c in EVENT_TYPES.items()}, indent=2))


if __name__ == "__main__":
    main()
