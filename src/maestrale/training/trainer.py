"""`train(spec, registry)`: load, validate, split, fit, evaluate, profile and register one model.

>>> from maestrale import Registry
>>> from maestrale.training import load_spec, train, expand_fleet
>>> reg = Registry(database_url="sqlite:////tmp/r.db", storage_url="file:///tmp/artifacts")
>>> for member in expand_fleet(load_spec("examples/specs/pv-nrel-50.yaml")):  # doctest: +SKIP
...     result = train(member, reg, reason="initial fit")
...     print(result.ref, result.metrics["nmae"], result.backtest_mean["nmae"])
pv-nrel-50:1 0.0405 0.0463

By default what is registered is the model fitted on the training rows of the holdout split, not a
refit on the whole window: its recorded holdout metrics are then honest out-of-sample figures for that
exact model, and `reproduce` can rebuild it bit for bit. The price is that the newest `test` period is
not learned from; retraining moves `train_window` forward, so the next version does learn from it.

`split: {refit: true}` trades that for recency (e.g. after a level shift the model must have seen the
new level): after the holdout evaluation a fresh estimator is fitted on every row of the window and
registered. The recorded metrics stay the holdout model's, so they describe a sibling fitted on fewer
rows, not the registered model itself; the version's params say `refit: "true"` so nobody mistakes
them. The reference profile then covers every row the registered model was fitted on.
`sample_weight: {half_life: 7D}` weighs each fit's rows by recency (param `sample_weight_half_life`).

With `feature_set:` the registered model is `Pipeline([("features", FeatureStep), ("model", estimator)])`:
it takes the raw inputs (the time and the columns the feature set reads), its `input_example` and
reference profile are those raw inputs, and params `inputs` / `features` record what the feature set
read and produced (`inputs_absent` the optional inputs the data lacked). With `features:` alone the
model takes those columns, as before.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from maestrale.errors import InvalidInput
from maestrale.training.evaluate import Deadline, FoldResult, Progress, fit_and_evaluate, total_steps
from maestrale.training.fleet import expand_fleet
from maestrale.training.holdout import holdout_series
from maestrale.training.sources import DataVersion, LoadedData, load_data
from maestrale.training.spec import SqlSource, TrainingSpec
from maestrale.training.validate import Prepared, prepare

if TYPE_CHECKING:
    from maestrale.registry.client import Registry
    from maestrale.training.source_policy import SourcePolicy


class TrainingResult(BaseModel):
    """What one training produced and registered.

    `metrics` are the holdout's; `backtest` has one entry per fold and `backtest_mean` their mean;
    `baselines` maps `persistence` / `climatology` to their holdout metrics. `n_train`, `train_start`
    and `train_end` describe the rows the registered model was fitted on: with `split.refit` the whole
    window, test period included (then `train_end` is `test_end`), although `metrics` still come from
    the model fitted on the rows before `test_start` (whose count is the metric `n_train`).

    >>> r = train(load_spec(text_with_refit), reg)  # doctest: +SKIP
    >>> r.train_end == r.test_end, r.n_train > r.metrics["n_train"]  # doctest: +SKIP
    (True, True)

    With `train(..., reuse=True)` an unchanged spec, data and code give back the version that
    already has them: `reused` is True, `metrics` are that version's, and nothing was fitted, so
    the row counts and periods are None.
    """

    name: str
    version: int
    metrics: dict[str, float]
    backtest: list[FoldResult] = Field(default_factory=list)
    backtest_mean: dict[str, float] = Field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = Field(default_factory=dict)
    duration_s: float
    data_version: DataVersion
    n_train: int | None
    n_test: int | None
    train_start: datetime | None
    train_end: datetime | None
    test_start: datetime | None
    test_end: datetime | None
    estimator: str
    timings_s: dict[str, float] = Field(default_factory=dict)
    inputs: list[str] = Field(default_factory=list, description="What the registered model takes.")
    features: list[str] = Field(default_factory=list, description="What its estimator is fitted on.")
    inputs_absent: list[str] = Field(
        default_factory=list, description="Optional inputs of the feature set that the data lacked."
    )
    reused: bool = Field(default=False, description="An unchanged version given back (`reuse=True`).")
    reuse_note: str | None = Field(
        default=None, description="With `reuse=True`: why this version was reused, or why none could be."
    )

    @property
    def ref(self) -> str:
        """`NAME:VERSION` of the registered version."""
        return f"{self.name}:{self.version}"


def _param_value(value: Any) -> str | int | float | bool | None:
    # the registry stores scalars: lists and mappings (e.g. LightGBM's categorical lists) go in as JSON
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # XGBoost's missing=nan: the registry refuses non-finite numbers; "nan" says it
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def data_key(spec: TrainingSpec) -> str:
    """What identifies a read: the source, plus the window for SQL (whose query may bind it)."""
    key = spec.data.model_dump(mode="json")
    if isinstance(spec.data, SqlSource) and spec.train_window is not None:
        key["window"] = spec.train_window.model_dump(mode="json")
    return json.dumps(key, sort_keys=True)


def registered_model(prepared: Prepared, estimator: Any) -> Any:
    """What is registered: `estimator`, behind the spec's feature step when it has a feature set."""
    if prepared.step is None:
        return estimator
    from sklearn.pipeline import Pipeline

    from maestrale.features.native import wrap_native

    return Pipeline([("features", prepared.step), ("model", wrap_native(estimator))])


def model_inputs(prepared: Prepared, rows: slice) -> Any:
    """The registered model's inputs for `rows`, as a caller sends them (the time as a column first)."""
    if prepared.raw is None or prepared.step is None:
        return prepared.X.iloc[rows]
    return prepared.raw.iloc[rows].reset_index().rename(columns={"index": prepared.step.time_column})


def load_for(spec: TrainingSpec, cache: dict[str, LoadedData] | None = None) -> LoadedData:
    """Read a spec's data, once per distinct source when a `cache` dict is shared (fleets)."""
    if cache is None:
        return load_data(spec.data, spec.train_window)
    key = data_key(spec)
    if key not in cache:
        cache[key] = load_data(spec.data, spec.train_window)
    return cache[key]


def train(
    spec: TrainingSpec,
    registry: Registry,
    *,
    reason: str | None = None,
    parent_version: int | None = None,
    request_id: str | None = None,
    progress: Progress | None = None,
    data: LoadedData | None = None,
    idempotency_key: str | None = None,
    source_policy: SourcePolicy | None = None,
    reuse: bool = False,
) -> TrainingResult:
    """Train one model from `spec` and register it with its full record; returns the figures.

    `data` lets a caller that already read the spec's source (a fleet sharing one file) pass it in.
    `progress(stage, done, total)` is called before each step. `time_limit_s` is checked between
    steps: a run over the limit raises `TrainingTimeout` and registers nothing. A local caller is
    trusted; `source_policy` (the worker passes one) refuses the spec before any data is read.
    `reuse=True` returns the registered version trained from the same spec, data and code, if there
    is one, instead of fitting it again (`maestrale.training.reuse`).

    >>> result = train(spec, reg, reason="drift", parent_version=3, request_id="req-42")  # doctest: +SKIP
    >>> result.ref, result.metrics["nmae"]  # doctest: +SKIP
    ('pv-nrel-50:4', 0.041)
    """
    from maestrale.stats.profile import reference_profile

    if spec.fleet is not None:
        raise InvalidInput(
            f"spec {spec.name!r} is a fleet: train each member, `for m in expand_fleet(spec): train(m, reg)`"
        )
    if source_policy is not None:
        source_policy.check(spec)
    started = time.perf_counter()
    deadline = Deadline(spec.time_limit_s, started)
    total = total_steps(spec)
    timings: dict[str, float] = {}
    if progress:
        progress("load data", 0, total)
    t0 = time.perf_counter()
    loaded = data if data is not None else load_for(spec)
    timings["load"] = time.perf_counter() - t0
    reuse_note = None
    if reuse:  # here: the data fingerprint needs the data, and nothing has been fitted yet
        from maestrale.training.reuse import find_unchanged

        lookup = find_unchanged(registry, spec, loaded.version.fingerprint)
        if lookup.version is not None:
            return _reused(lookup.version, loaded, time.perf_counter() - started, lookup.reason)
        reuse_note = lookup.reason
    t0 = time.perf_counter()
    prepared = prepare(spec, loaded)
    timings["validate"] = time.perf_counter() - t0
    deadline.check("loading the data")

    ev = fit_and_evaluate(spec, prepared, deadline=deadline, progress=progress, steps=(1, total))
    timings.update(ev.timings)

    t0 = time.perf_counter()
    # the profile describes what the registered model learnt from: with refit, the whole window
    train_rows = ev.fit_rows
    X_train, y_train = prepared.X.iloc[train_rows], prepared.y.iloc[train_rows]
    # predictions of the registered model itself: with refit, on its own rows (the holdout
    # predictions come from the holdout model, which a monitor of the refit model must not expect)
    predictions = ev.model.predict(X_train) if spec.split.refit else ev.test_predictions
    months = prepared.times[train_rows].month.to_numpy() if hasattr(prepared.times, "month") else None
    # the profile describes what the model takes, i.e. what its callers send and the monitor logs
    inputs = X_train if prepared.raw is None else prepared.raw.iloc[train_rows]
    profile = reference_profile(inputs, predictions, target=y_train.to_numpy(), months=months)
    # the holdout model's forecast on the holdout (what `metrics` describe, with refit too)
    test = slice(int(ev.split.test[0]), int(ev.split.test[-1]) + 1)
    holdout = holdout_series(prepared.times[test], prepared.y.iloc[test], ev.test_predictions, ev.folds)
    timings["profile"] = time.perf_counter() - t0
    deadline.check("evaluation")

    if progress:
        progress("register", total - 1, total)
    duration = time.perf_counter() - started
    times = prepared.times
    test_rows = slice(int(ev.split.test[0]), int(ev.split.test[-1]) + 1)
    tags = dict(spec.tags)
    if request_id:
        tags["request_id"] = request_id
    from maestrale.training.reuse import SPEC_TAG, spec_sha256

    tags[SPEC_TAG] = spec_sha256(spec)  # what a later `train(..., reuse=True)` searches for
    params = {"estimator": ev.estimator_class, **{k: _param_value(v) for k, v in ev.params.items()}}
    # after the estimator's own params: how the model was trained must read true in the registry
    params["refit"] = "true" if spec.split.refit else "false"
    if spec.sample_weight is not None:
        params["sample_weight_half_life"] = spec.sample_weight.half_life
    step = prepared.step
    example = model_inputs(prepared, slice(train_rows.start, min(train_rows.start + 5, train_rows.stop)))
    if step is not None:  # what the feature set read and produced, recorded rather than guessed
        params["inputs"] = ",".join(step.input_columns)
        params["features"] = ",".join(step.features_)
        if step.optional_absent_:
            params["inputs_absent"] = ",".join(step.optional_absent_)
    t0 = time.perf_counter()
    mv = registry.register(
        spec.name,
        registered_model(prepared, ev.model),
        params=params,
        metrics=ev.flat_metrics(),
        tags=tags,
        input_example=example,
        description=spec.description or f"{ev.estimator_class} on {loaded.label}, target {spec.target}",
        data_fingerprint=loaded.version.fingerprint,
        data_version=loaded.version.version,
        duration_s=round(duration, 4),
        parent_version=parent_version,
        reason=reason,
        spec=spec.to_record(),
        profile=profile,
        holdout=holdout,
        lineage=[loaded.version.lineage()],
        idempotency_key=idempotency_key,  # a redelivered request gets its first version back
    )
    timings["register"] = time.perf_counter() - t0
    if progress:
        progress("done", total, total)
    return TrainingResult(
        name=mv.name,
        version=mv.version,
        metrics=ev.metrics,
        backtest=ev.folds,
        backtest_mean=ev.backtest_mean,
        baselines=ev.baselines,
        duration_s=time.perf_counter() - started,
        data_version=loaded.version,
        n_train=train_rows.stop - train_rows.start,
        n_test=int(ev.split.test.size),
        train_start=times[train_rows.start],
        train_end=times[train_rows.stop - 1],
        test_start=times[test_rows.start],
        test_end=times[test_rows.stop - 1],
        estimator=ev.estimator_class,
        timings_s={k: round(v, 6) for k, v in timings.items()},
        inputs=[str(c) for c in example.columns],
        features=[str(c) for c in prepared.X.columns],
        inputs_absent=list(step.optional_absent_) if step is not None else [],
        reuse_note=reuse_note,
    )


def _reused(mv: Any, loaded: LoadedData, duration: float, note: str | None) -> TrainingResult:
    """The result of a training skipped because version `mv` has the same spec, data and code."""
    split = ("backtest_", "persistence_", "climatology_", "n_")
    return TrainingResult(
        name=mv.name,
        version=mv.version,
        metrics={k: v for k, v in mv.metrics.items() if not k.startswith(split)},
        backtest_mean={
            k.removeprefix("backtest_"): v
            for k, v in mv.metrics.items()
            if k.startswith("backtest_") and not k.startswith("backtest_fold")
        },
        duration_s=duration,
        data_version=loaded.version,
        n_train=None, n_test=None, train_start=None, train_end=None, test_start=None, test_end=None,
        estimator=str(mv.params.get("estimator") or mv.artifact.flavor),
        reused=True, reuse_note=note,
    )  # fmt: skip


__all__ = [
    "TrainingResult",
    "data_key",
    "expand_fleet",
    "load_for",
    "model_inputs",
    "registered_model",
    "train",
]
