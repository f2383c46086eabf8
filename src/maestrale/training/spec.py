"""`TrainingSpec`: the declarative description of one model (or a fleet), loaded from YAML.

>>> from maestrale.training.specio import parse_spec
>>> spec = parse_spec('''
... name: pv-nrel-50
... data: {dataset: nrel_system50, freq: 1h}
... target: power_kw
... feature_set: pv_features
... estimator: hgb
... params: {max_iter: 50}
... split: {holdout: {test_start: 2011-08-01}}
... capacity: 3.4
... ''')
>>> spec.estimator, spec.split.holdout.test_start
('hgb', datetime.date(2011, 8, 1))

Errors name the field path, the YAML line and what to write instead (`SpecError`).
Only pydantic and yaml are imported here: the API and CLI validate specs without pandas or sklearn.
The readers (`parse_spec` for requests, `load_spec_file` for the CLI, `load_spec`) are in `specio`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from maestrale.errors import InvalidInput, InvalidName
from maestrale.refs import validate_name
from maestrale.training.datasource import (
    DatasetSource,
    DataSource,
    DvcSource,
    SqlSource,
    StrictModel,
    UriSource,
    dvc_url_parts,
)
from maestrale.vocabulary import (
    DEFAULT_PERSISTENCE_LAG,
    Duration,
    SampleWeight,
    TrainingMetric,
    check_duration,
)

DATASETS = ("nrel_system50", "pvgis_italy_tmy")
_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _parse_moment(value: Any) -> Any:
    """YAML gives date/datetime for unquoted stamps; quoted ones arrive as strings."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a date: write an ISO date like 2011-08-01 or a time like 2011-08-01T06:00Z"
            ) from None
    return value


#: A date (a whole day) or a date-time; without a zone it is read in the data's time zone.
Moment = Annotated[date | datetime, BeforeValidator(_parse_moment)]
Scalar = str | int | float | bool


class Holdout(StrictModel):
    """The final, time-ordered test period: from `test_start`, or the last `test_fraction` of rows."""

    test_start: Moment | None = None
    test_fraction: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one(self) -> Holdout:
        if (self.test_start is None) == (self.test_fraction is None):
            raise ValueError("give exactly one of test_start (e.g. 2011-08-01) or test_fraction (e.g. 0.2)")
        return self


class Backtest(StrictModel):
    """Rolling-origin evaluation before the holdout: `folds` test windows, each after an expanding train."""

    folds: int = Field(ge=1, le=100)
    test_size: Duration | int = Field(description='A duration ("30D") or a number of rows.')

    @field_validator("test_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError(f'{v!r} is not a test size: write a duration like "30D" or a row count like 720')
        return v if isinstance(v, int) else check_duration(v)


class SplitSpec(StrictModel):
    """How the window's rows are split for evaluation, and whether the registered model refits on all of them.

    >>> SplitSpec.model_validate({"holdout": {"test_start": "2011-08-01"}, "refit": True}).refit
    True
    """

    holdout: Holdout = Field(default_factory=lambda: Holdout(test_fraction=0.2))
    backtest: Backtest | None = None
    refit: bool = Field(
        default=False,  # by keyword: a type checker reads a positional default as none (refit required)
        description=(
            "After the holdout evaluation, fit a fresh estimator on every row of the window (train + "
            "holdout) and register that one, so it has seen the newest data (e.g. after a level shift). "
            "The recorded metrics stay those of the holdout, i.e. of the model fitted on the rows before "
            "test_start: the registered model itself has no out-of-sample score."
        ),
    )


class Persistence(StrictModel):
    """Forecast = the target `lag` earlier (same hour yesterday for lag 24h)."""

    lag: Duration = DEFAULT_PERSISTENCE_LAG


class Climatology(StrictModel):
    """Forecast = the training window's mean target for the same hour of day (or of week)."""

    by: Literal["hour_of_day", "hour_of_week"] = "hour_of_day"


class Baselines(StrictModel):
    persistence: Persistence | None = None
    climatology: Climatology | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, v: Any) -> Any:
        # `persistence:` with nothing after it means "on, with defaults", not "off"
        return {k: ({} if val is None else val) for k, val in v.items()} if isinstance(v, dict) else v


class TrainWindow(StrictModel):
    """Rows used for training and evaluation; a date includes its whole day, a date-time is exclusive."""

    start: Moment | None = None
    end: Moment | None = None

    @model_validator(mode="after")
    def _order(self) -> TrainWindow:
        if self.start is not None and self.end is not None and _as_dt(self.end) < _as_dt(self.start):
            raise ValueError(f"end {self.end} is before start {self.start}: swap them")
        return self


def _as_dt(m: date) -> datetime:
    return m if isinstance(m, datetime) else datetime(m.year, m.month, m.day)


Fleet = dict[str, list[Scalar] | Scalar] | list[dict[str, Any]]


class TrainingSpec(StrictModel):
    """One model to train (or, with `fleet`, a template for one model per fleet member)."""

    # first, so that `name` (validated next) can check its {variables} against the fleet
    fleet: Fleet | None = Field(None, description="One model per member: {site: [p50, p51]}.")
    name: str = Field(description="Model name, e.g. pv-nrel-50; with a fleet it may use {variables}.")
    description: str = ""
    data: DataSource
    time_column: str | None = Field(None, description="Column (or index name) of timestamps; 'index'.")
    timezone: str | None = Field(
        None,
        description="The zone naive timestamps were written in, e.g. Europe/Rome (IANA) or +01:00; without "
        "it, timestamps must carry an offset. The repeated hour of a DST change is resolved by row order.",
    )
    time_format: str | None = Field(
        None, description='strftime format of the time strings, e.g. "%d/%m/%Y %H:%M"; default ISO 8601.'
    )
    target: str
    features: list[str] | None = Field(None, description="Columns, or a subset of the feature_set's.")
    feature_set: str | None = Field(
        None, description="pv_features, a feature-set plugin, or module:function from a trusted module."
    )
    estimator: str = Field(
        description="An alias (hgb, ridge, lightgbm, xgboost), module:Class of scikit-learn, LightGBM or "
        "XGBoost, a plugin, or module:Name from a module in MAESTRALE_ESTIMATOR_MODULES."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    split: SplitSpec = Field(default_factory=SplitSpec)
    metrics: list[TrainingMetric] | None = None
    baselines: Baselines = Field(default_factory=Baselines)
    capacity: float | None = Field(None, gt=0, description="Installed capacity, for nMAE and nRMSE.")
    tags: dict[str, str] = Field(default_factory=dict)
    train_window: TrainWindow | None = None
    sample_weight: SampleWeight | None = Field(
        None, description='Recency weighting of training rows: {half_life: "7D"}; needs fit(sample_weight=).'
    )
    max_nan_share: float = Field(0.2, ge=0, le=1, description="Largest NaN share in target or a feature.")
    time_limit_s: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _dvc_uri(cls, v: Any) -> Any:
        # `uri: dvc://…` is shorthand for the dvc form; rewrite it before the union picks a model
        if isinstance(v, dict) and isinstance(v.get("data"), dict):
            uri = v["data"].get("uri")
            if isinstance(uri, str) and uri.startswith("dvc://"):
                v = {
                    **v,
                    "data": {**{k: x for k, x in v["data"].items() if k != "uri"}, "dvc": dvc_url_parts(uri)},
                }
        return v

    @field_validator("fleet")
    @classmethod
    def _fleet(cls, v: Fleet | None) -> Fleet | None:
        from maestrale.training.fleet import fleet_members

        if v is not None:
            fleet_members(v)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        from maestrale.training.fleet import fleet_members, render

        fleet = info.data.get("fleet")
        used = placeholders(v)
        known = set() if fleet is None else set(fleet_members(fleet)[0][0])
        if unknown := [p for p in used if p not in known]:
            have = f"the fleet defines {', '.join(sorted(known))}" if known else "there is no valid fleet"
            raise ValueError(
                f"name uses {{{unknown[0]}}} but {have}: add it, e.g. fleet: {{{unknown[0]}: [a, b]}}"
            )
        names = [v] if fleet is None else [render(v, variables) for variables, _ in fleet_members(fleet)]
        for name in names:
            try:
                validate_name(name)
            except InvalidName as exc:
                raise ValueError(exc.message) from None
        if len(set(names)) < len(names):
            raise ValueError(
                f"name {v!r} is the same for several fleet members: use the fleet variables, "
                f"e.g. name: {v}-{{{next(iter(fleet_members(fleet)[0][0]))}}}"
            )
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_values(cls, v: Any) -> Any:
        return (
            {k: str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}
            if isinstance(v, dict)
            else v
        )

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, v: str) -> str:
        from maestrale.training.estimators import check_estimator_ref

        return check_estimator_ref(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        from maestrale.timeparse import TimeParseError, check_timezone

        try:
            return v if v is None else check_timezone(v)
        except TimeParseError as exc:
            raise ValueError(exc.message) from None

    @field_validator("time_format")
    @classmethod
    def _time_format(cls, v: str | None) -> str | None:
        if v is not None and "%" not in v:
            raise ValueError(
                f"{v!r} is not a strftime format: write one with % codes, e.g. "
                '"%d/%m/%Y %H:%M" for 13/01/2024 10:00'
            )
        return v

    @field_validator("feature_set")
    @classmethod
    def _feature_set(cls, v: str | None) -> str | None:
        from maestrale.training.features import check_feature_set_ref

        return v if v is None else check_feature_set_ref(v)

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSpec:
        if self.features is None and self.feature_set is None:
            raise ValueError("give features (a list of columns) or feature_set: pv_features")
        if self.features is not None and self.target in self.features:
            raise ValueError(f"target {self.target!r} is also in features: a model must not see its target")
        if self.fleet is not None:
            return self  # members may set capacity or baselines: each member is checked on expansion
        wanted = set(self.metrics or ())
        if wanted & {"nmae", "nrmse"} and self.capacity is None:
            raise ValueError("nmae and nrmse divide by capacity: add e.g. `capacity: 3.4` (installed kW)")
        if "skill" in wanted and self.baselines.persistence is None:
            raise ValueError("skill compares with persistence: add `baselines: {persistence: {lag: 24h}}`")
        return self

    def metric_names(self) -> list[str]:
        """The metrics to record: as listed, or every one the spec makes meaningful.

        >>> from maestrale.training.specio import parse_spec
        >>> parse_spec("name: m\\ndata: {dataset: nrel_system50}\\ntarget: power_kw\\n"
        ...            "features: [ghi]\\nestimator: ridge").metric_names()
        ['mae', 'rmse', 'bias', 'mape']
        """
        if self.metrics is not None:
            return list(self.metrics)
        names = ["mae", "rmse", "bias", "mape"]
        if self.capacity is not None:
            names += ["nmae", "nrmse"]
        if self.baselines.persistence is not None:
            names.append("skill")
        return names

    def to_record(self) -> dict[str, Any]:
        """The spec as recorded on a registered version (JSON types; secrets masked)."""
        from maestrale.training.fleet import mask_secrets

        record = self.model_dump(mode="json", exclude_none=True, exclude={"fleet"})
        record["data"] = mask_secrets(record["data"])
        return record


class SpecIssue(BaseModel):
    """One problem in a spec: where (field path, YAML line) and what to write instead."""

    path: str
    line: int | None = None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '(top level)'}: {self.message}"


class SpecError(InvalidInput):
    """A training spec that cannot be used; `issues` lists each problem with its YAML line."""

    def __init__(self, source: str, issues: list[SpecIssue]) -> None:
        n = len(issues)
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"training spec {source} has {n} problem{'s' * (n != 1)}:\n{lines}")
        self.source, self.issues = source, issues


def resolve_paths(spec: TrainingSpec, folder: Path) -> TrainingSpec:
    """`spec` with a relative data path (file URI or DVC repo) made absolute against `folder`."""
    data = spec.data
    if isinstance(data, UriSource) and "://" not in data.uri and not data.uri.startswith(("/", "$")):
        return spec.model_copy(update={"data": data.model_copy(update={"uri": str(folder / data.uri)})})
    if isinstance(data, DvcSource) and "://" not in data.dvc.repo and not data.dvc.repo.startswith("/"):
        dvc = data.dvc.model_copy(update={"repo": str((folder / data.dvc.repo).resolve())})
        return spec.model_copy(update={"data": data.model_copy(update={"dvc": dvc})})
    return spec


def placeholders(text: str) -> list[str]:
    """The `{variables}` a template string uses.

    >>> placeholders("pv-{site}-{kind}")
    ['site', 'kind']
    """
    return _PLACEHOLDER_RE.findall(text)


_READERS = ("load_spec", "load_spec_file", "parse_spec", "spec_from_data")
if TYPE_CHECKING:
    from maestrale.training.specio import load_spec, load_spec_file, parse_spec, spec_from_data


def __getattr__(name: str) -> Any:
    # the readers build on the classes above and live in specio; re-exported here, where callers look
    if name in _READERS:
        from maestrale.training import specio

        return getattr(specio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "Backtest",
    "Baselines",
    "DataSource",
    "DatasetSource",
    "DvcSource",
    "Holdout",
    "SampleWeight",
    "SpecError",
    "SpecIssue",
    "SplitSpec",
    "SqlSource",
    "TrainWindow",
    "TrainingSpec",
    "UriSource",
    "load_spec",
    "load_spec_file",
    "parse_spec",
    "placeholders",
    "resolve_paths",
    "spec_from_data",
]
