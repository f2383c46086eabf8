"""Monitoring policies: when a model is out of bounds, and what to do about it (YAML, validated).

>>> policy = load_policy('''
... name: pv
... conditions:
...   - {name: accuracy, metric: nmae, window: 7D, ratio_to_training: 1.3, min_samples: 100}
... cooldown: 7D
... ''')
>>> policy.conditions[0].describe()
'nmae over 7D > 1.3 × training (n ≥ 100)'

A condition compares one figure over one window with a threshold: a performance metric (`nmae`,
`rmse`, `nbias`, `skill`, …) against an absolute bound or a multiple of the version's training
metric, or a drift statistic (`psi`, `ks`, `wasserstein`, `js`) against a bound on a share of the
features. Conditions below `min_samples` pairs never fire: a quiet night says nothing.

Errors name the field and what to write instead (`PolicyError`), like spec errors.
"""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from maestrale import yamlsafe
from maestrale.errors import InvalidInput
from maestrale.vocabulary import ERROR_METRICS, METRICS, SampleWeight, parse_window

MAX_ENTITY_CAPACITIES = 100_000
_Entity = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_Capacity = Annotated[float, Field(gt=0, allow_inf_nan=False)]
DRIFT_METRICS = ("psi", "ks", "wasserstein", "js")
Action = Literal["breach", "retrain"]
DEFAULT_ACTIONS: tuple[Action, ...] = ("breach", "retrain")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _window(value: Any) -> str:
    if not isinstance(value, str):  # a number: say what the unit-less value lacks, as for a bad string
        raise ValueError(f'{value!r} is not a window: write a number and a unit, e.g. "7D", "24h", "90min"')
    parse_window(value)
    return value.strip()


class Condition(_Strict):
    """One test: `metric` over `window` compared with exactly one threshold."""

    name: str = Field(min_length=1)
    metric: str | None = Field(default=None, description="Performance metric: " + ", ".join(METRICS))
    drift: str | None = Field(default=None, description="Drift statistic: " + ", ".join(DRIFT_METRICS))
    window: str = "7D"
    above: float | None = None
    below: float | None = None
    abs_above: float | None = Field(default=None, description="|value| above this (for bias).")
    ratio_to_training: float | None = Field(default=None, gt=0, description="value > this × training value.")
    min_samples: int = Field(100, ge=1)
    min_share: float = Field(0.3, gt=0, le=1, description="Drift: share of features over the bound.")
    features: list[str] | None = Field(default=None, description="Drift: features to test (default: all).")
    exclude: list[str] = Field(default_factory=list, description="Drift: features never tested.")
    reference: Literal["season", "training"] = Field(
        "season",
        description="Drift: compare with the training rows of the same calendar month (season; a month "
        "the version was not trained on is not judged: status 'no reference for <month>') or with all "
        "of them (training).",
    )
    actions: list[Action] | None = Field(default=None, description="Overrides the policy's actions.")

    @field_validator("window", mode="before")
    @classmethod
    def _check_window(cls, v: Any) -> str:
        return _window(v)

    @model_validator(mode="after")
    def _one_threshold(self) -> Condition:
        if (self.metric is None) == (self.drift is None):
            raise ValueError(
                f"condition {self.name!r}: give exactly one of metric (e.g. nmae) or drift (e.g. psi)"
            )
        if self.metric is not None and self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}: use one of {', '.join(METRICS)}")
        if self.drift is not None and self.drift not in DRIFT_METRICS:
            raise ValueError(f"unknown drift statistic {self.drift!r}: use one of {', '.join(DRIFT_METRICS)}")
        given = [
            k for k in ("above", "below", "abs_above", "ratio_to_training") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"condition {self.name!r} needs exactly one threshold (above, below, abs_above or "
                f"ratio_to_training), got {given or 'none'}: e.g. `ratio_to_training: 1.3`"
            )
        if self.drift is not None and given[0] != "above":
            raise ValueError(f"drift condition {self.name!r}: use `above:` (e.g. above: 0.25 for PSI)")
        return self

    @property
    def threshold(self) -> float:
        """The bound as given (for ratio_to_training: the multiple)."""
        for k in ("above", "below", "abs_above", "ratio_to_training"):
            if (v := getattr(self, k)) is not None:
                return float(v)
        raise AssertionError("validated to have one threshold")

    def label(self) -> str:
        """What is measured: `nmae`, or `psi` for drift."""
        return self.metric or f"{self.drift}"

    def describe(self) -> str:
        """Human form: 'nmae over 7D > 1.3 × training (n ≥ 100)'."""
        what = f"{self.label()} over {self.window}"
        if self.drift:
            test = f"> {self.above:g} on ≥ {self.min_share:.0%} of features"
        elif self.ratio_to_training is not None:
            test = f"> {self.ratio_to_training:g} × training"
        elif self.abs_above is not None:
            test = f"|·| > {self.abs_above:g}"
        elif self.above is not None:
            test = f"> {self.above:g}"
        else:
            test = f"< {self.below:g}"
        return f"{what} {test} (n ≥ {self.min_samples})"

    def fires(self, value: float, training: float | None = None) -> bool | None:
        """True/False, or None when the comparison is impossible (no training value for a ratio)."""
        if self.ratio_to_training is not None:
            if training is None or not training > 0:
                return None
            return value > self.ratio_to_training * training
        if self.abs_above is not None:
            return abs(value) > self.abs_above
        if self.above is not None:
            return value > self.above
        return value < float(self.below)  # type: ignore[arg-type]


class Schedule(_Strict):
    """Evaluate once `every` of data time has passed (new actuals move the monitor's clock)."""

    every: str = "1D"

    @field_validator("every", mode="before")
    @classmethod
    def _check_every(cls, v: Any) -> str:
        return _window(v)


class Retrain(_Strict):
    """How the recorded spec is changed when the monitor asks for a retraining."""

    window: str | Literal["keep"] = Field(
        default="keep",
        description="Length of the new train window ending at the monitor's clock; keep: as before.",
    )
    holdout: str = Field(
        default="14D",
        description="The last part of the new window, held out for the metrics.",
    )
    sample_weight: SampleWeight | None = Field(default=None, description="Recency weighting of the new fit.")
    refit: bool = Field(
        default=True,
        description="Refit on the whole window (holdout included) before registering.",
    )

    @field_validator("window", "holdout", mode="before")
    @classmethod
    def _windows(cls, v: Any) -> Any:
        return v if v == "keep" else _window(v)


class Promotion(_Strict):
    """Champion/challenger: when a retrained version replaces the champion."""

    auto: bool = True
    metric: str = "nmae"
    margin: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Challenger must be this much better (relative).",
    )
    min_samples: int = Field(default=72, ge=1, description="Out-of-sample pairs needed before deciding.")
    max_wait: str = Field(
        default="14D",
        description="Reject a challenger still undecided after this data time.",
    )
    guardrails: dict[str, float] = Field(
        default_factory=lambda: {"rmse": 0.02},
        description="metric → tolerance: the challenger may not be worse than the champion by more "
        "than this share (bias and nbias compare absolute values).",
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in ERROR_METRICS:
            raise ValueError(f"promotion metric {v!r}: use an error metric, one of mae, rmse, nmae, nrmse")
        return v

    @field_validator("guardrails")
    @classmethod
    def _guards(cls, v: dict[str, float]) -> dict[str, float]:
        for k, tol in v.items():
            if k not in ERROR_METRICS:
                raise ValueError(f"guardrail {k!r}: use one of {', '.join(ERROR_METRICS)}")
            if tol < 0:
                raise ValueError(f"guardrail {k}: tolerance {tol} is negative; 0 means 'not worse at all'")
        return v

    @field_validator("max_wait", mode="before")
    @classmethod
    def _check_max_wait(cls, v: Any) -> str:
        return _window(v)


class Policy(_Strict):
    """A named set of conditions for the models whose names match `models`."""

    name: str = Field(min_length=1)
    description: str = ""
    models: list[str] = Field(default_factory=lambda: ["*"], description="Glob patterns of model names.")
    schedule: Schedule = Field(default_factory=Schedule)
    conditions: list[Condition] = Field(min_length=1)
    actions: list[Action] = Field(default_factory=lambda: list(DEFAULT_ACTIONS))
    cooldown: str = Field(
        default="7D",
        description="No new retraining within this data time of the last one.",
    )
    backoff: float = Field(
        default=2.0,
        ge=1,
        description="After each rejected challenger in a row the cooldown is multiplied by this (up to "
        "max_backoff): a cause that retraining cannot fix (snow on the panels) stops costing trainings.",
    )
    max_backoff: float = Field(default=4.0, ge=1)
    retrain: Retrain = Field(default_factory=lambda: Retrain())
    promotion: Promotion = Field(default_factory=lambda: Promotion())
    capacity: dict[_Entity, _Capacity] = Field(
        default_factory=dict,
        max_length=MAX_ENTITY_CAPACITIES,
        description="Installed capacity per entity (plant), e.g. {foggia: 950, torino: 700}: a model "
        "serving several plants gets nMAE, nRMSE and nbias with each plant's own capacity. Entities "
        "left out use the capacity of the model's spec.",
    )

    @field_validator("cooldown", mode="before")
    @classmethod
    def _check_cooldown(cls, v: Any) -> str:
        return _window(v)

    @model_validator(mode="after")
    def _unique(self) -> Policy:
        names = [c.name for c in self.conditions]
        if dup := {n for n in names if names.count(n) > 1}:
            raise ValueError(f"condition names must be unique, {sorted(dup)} repeat: rename one")
        return self

    def applies_to(self, model: str) -> bool:
        """True when `model` matches one of the policy's patterns."""
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)

    def actions_of(self, condition: Condition) -> list[str]:
        """The actions a breach of `condition` takes."""
        return list(condition.actions if condition.actions is not None else self.actions)


class PolicyError(InvalidInput):
    """A policy file is invalid; the message lists each problem with its field path."""

    code = "invalid_policy"


def _problems(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where or 'policy'}: {msg}")
    return "\n".join(lines)


def parse_policy(text: str, where: str = "policy") -> Policy:
    """A policy from YAML text, never a file path (for text that arrives in a request).

    The YAML is bounded (`maestrale.yamlsafe`: size, depth, alias expansion); `PolicyError` says why.
    """
    try:
        data = yamlsafe.load(text)
    except yamlsafe.YamlError as exc:
        at = f", line {exc.line}" if exc.line else ""
        raise PolicyError(f"{where}{at}: {exc.message}") from None
    return _validate(data, where)


def load_policy(source: str | Path | dict[str, Any]) -> Policy:
    """A policy from a YAML file, YAML text or a dict; `PolicyError` lists every problem.

    A local caller's convenience: a `Path` or one line ending in .yaml is read as a file. For text
    from a request, use `parse_policy`.
    """
    if isinstance(source, dict):
        return _validate(source, "policy")
    text = str(source)
    if isinstance(source, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.exists():
            raise PolicyError(f"policy file {path} does not exist: pass the path of a YAML policy")
        try:
            text = yamlsafe.read_text(path)
        except yamlsafe.YamlError as exc:
            raise PolicyError(exc.message) from None
        return parse_policy(text, str(path))
    return parse_policy(text)


def _validate(data: Any, where: str) -> Policy:
    """`Policy` from plain data; `PolicyError` lists every problem with its field path."""
    if not isinstance(data, dict):
        raise PolicyError(f"{where} must be a mapping with name and conditions, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{where} is invalid:\n{_problems(exc)}") from None


def default_policy() -> Policy:
    """The policy shipped with Maestrale (`maestrale/monitoring/default_policy.yaml`)."""
    text = resources.files("maestrale.monitoring").joinpath("default_policy.yaml").read_text()
    return load_policy(text)


def policy_for(policies: list[Policy], model: str) -> Policy | None:
    """The first policy that applies to `model`."""
    return next((p for p in policies if p.applies_to(model)), None)
