"""`reproduce(registry, ref)`: retrain a registered version from its recorded spec and data, and compare.

>>> report = reproduce(reg, "pv-nrel-50:3")  # doctest: +SKIP
>>> report.identical, report.max_abs_difference  # doctest: +SKIP
(True, 0.0)

Nothing is registered. The data is read at the recorded version: for DVC the recorded commit (not
the branch or tag, which may have moved); for files, tables and datasets the current content, whose
fingerprint is compared with the recorded one, and the report says plainly when it changed.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from maestrale.errors import InvalidInput
from maestrale.training.evaluate import fit_and_evaluate
from maestrale.training.sources import DataVersion, load_data
from maestrale.training.spec import DvcSource, SqlSource, TrainingSpec
from maestrale.training.validate import prepare

if TYPE_CHECKING:
    from maestrale.registry.client import Registry
    from maestrale.registry.types import LineageEntry


class MetricDiff(BaseModel):
    """One metric: as recorded, as reproduced now, and reproduced − recorded (None if absent on one side)."""

    metric: str
    recorded: float | None
    reproduced: float | None
    difference: float | None


class ReproduceReport(BaseModel):
    """How closely a retraining matches a registered version."""

    ref: str
    data_uri: str
    data_version: str | None = Field(None, description="The recorded DVC commit or etag, if any.")
    recorded_fingerprint: str | None
    current_fingerprint: str
    data_changed: bool
    note: str
    metrics: list[MetricDiff]
    max_abs_difference: float
    identical: bool = Field(description="Same data and every metric difference within the tolerance.")
    duration_s: float


def _recorded_data(lineage: list[LineageEntry]) -> DataVersion | None:
    for entry in lineage:
        if entry.relation == "training_data" and isinstance(entry.detail, dict):
            return DataVersion.model_validate(entry.detail)
    return None


def _pin(spec: TrainingSpec, recorded: DataVersion | None) -> TrainingSpec:
    """The spec with its DVC rev replaced by the commit that was actually read."""
    if isinstance(spec.data, DvcSource) and recorded is not None and recorded.commit:
        dvc = spec.data.dvc.model_copy(update={"rev": recorded.commit})
        return spec.model_copy(update={"data": spec.data.model_copy(update={"dvc": dvc})})
    if isinstance(spec.data, SqlSource) and "***" in spec.data.sql.url:
        raise InvalidInput(
            "the recorded spec hides the database password (it was written into the spec): reproduce needs "
            "specs that say `url: ${ENV_VAR}` and keep the secret in the environment"
        )
    return spec


def reproduce(registry: Registry, ref: str, *, tolerance: float = 0.0) -> ReproduceReport:
    """Retrain `ref` (e.g. `pv-nrel-50:3`) exactly as recorded, without registering; compare metrics.

    `tolerance` is the largest |difference| still called identical (0: bit-for-bit metrics).
    """
    started = time.perf_counter()
    mv = registry.get_version(ref)
    if not mv.spec:
        raise InvalidInput(
            f"{mv.ref} has no recorded training spec (it was registered directly, not by maestrale train): "
            "there is nothing to reproduce it from"
        )
    try:
        spec = TrainingSpec.model_validate(mv.spec)
    except ValidationError as exc:
        raise InvalidInput(f"the spec recorded on {mv.ref} no longer validates: {exc}") from None
    recorded = _recorded_data(mv.lineage)
    spec = _pin(spec, recorded)
    loaded = load_data(spec.data, spec.train_window)
    current = loaded.version.fingerprint
    before = recorded.fingerprint if recorded else mv.data_fingerprint
    changed = before is not None and before != current
    if changed:
        note = (
            f"the data changed since {mv.ref} was trained: {loaded.version.uri} had fingerprint {before}, "
            f"now {current}; differences below may come from the data, not the code"
        )
    elif before is None:
        note = f"{mv.ref} recorded no data fingerprint: cannot tell whether the data changed"
    else:
        pinned = f" at commit {recorded.commit}" if recorded and recorded.commit else ""
        note = f"same data as recorded{pinned} (fingerprint {current[:19]}…)"
    ev = fit_and_evaluate(spec, prepare(spec, loaded))
    now = ev.flat_metrics()
    rows, worst = [], 0.0
    for name in sorted(set(mv.metrics) | set(now)):
        a, b = mv.metrics.get(name), now.get(name)
        diff = None if a is None or b is None else b - a
        if diff is not None and math.isfinite(diff):
            worst = max(worst, abs(diff))
        elif a is not None or b is not None:
            worst = math.inf  # a metric present on one side only is a difference too
        rows.append(MetricDiff(metric=name, recorded=a, reproduced=b, difference=diff))
    return ReproduceReport(
        ref=mv.ref,
        data_uri=loaded.version.uri,
        data_version=mv.data_version,
        recorded_fingerprint=before,
        current_fingerprint=current,
        data_changed=changed,
        note=note,
        metrics=rows,
        max_abs_difference=worst,
        identical=not changed and worst <= tolerance,
        duration_s=time.perf_counter() - started,
    )
