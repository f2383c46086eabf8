"""The models a server serves: one slot per name, swapped atomically when the alias it follows moves.

>>> repo = ModelRepository(Registry(), ["pv-nrel-50@champion"])  # loads now  # doctest: +SKIP
>>> served = repo.get("pv-nrel-50")            # read once per request  # doctest: +SKIP
>>> served.predict(X), served.version           # doctest: +SKIP
>>> repo.reload("pv-nrel-50").result()         # True if a new version was swapped in  # doctest: +SKIP

A feature pipeline (`maestrale.features`) takes the raw inputs: its `ServedModel` knows the time
input (`time_column`, also the target time of each logged prediction) and the zone of naive times.

A request takes `repo.get(name)` once, at its start, and uses that object to the end: a reload
builds the new `ServedModel` in a background thread and swaps it in with one attribute assignment,
so requests in flight finish on the old model and none ever sees a half-loaded one. Exact
references (`NAME:3`) never reload.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from maestrale.errors import InvalidInput, NotFound
from maestrale.refs import ModelRef
from maestrale.registry.types import ColumnSchema, ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One loaded version, immutable: what a request holds from its start to its end."""

    name: str
    version: int
    sha256: str
    model: Any
    meta: ModelVersion
    columns: list[ColumnSchema] | None
    alias: str | None
    loaded_at: float
    positional: bool = False  # predict on the bare array (see `positional`)
    # a feature pipeline's time input and the zone its naive times are in (`maestrale.features`)
    time_column: str | None = None
    timezone: str | None = None

    def predict(self, X: Any) -> Any:
        """`model.predict(X)`; on the frame's array when the model reads its columns by position."""
        if self.positional and hasattr(X, "to_numpy"):
            return self.model.predict(X.to_numpy())
        return self.model.predict(X)

    @property
    def platform(self) -> str:
        """The library the model comes from (`sklearn`, `lightgbm`, …), as V2 metadata's `platform`."""
        return self.meta.artifact.flavor.split(".", 1)[0]


# Estimators that read columns by name: a DataFrame must reach them.
_BY_NAME = (
    "ColumnTransformer",
    "Pipeline",
    "FeatureUnion",
    "FunctionTransformer",
    "TransformedTargetRegressor",
)
# scikit-learn warns when an array reaches an estimator fitted on a DataFrame; for `positional`
# models the columns are in the fitted order by construction, so the warning says nothing.
_NAMES_WARNING = "X does not have valid feature names"


def positional(model: Any, columns: list[ColumnSchema] | None) -> bool:
    """True when `model.predict(frame.to_numpy())` equals `model.predict(frame)` for frames in `columns`.

    That holds for a plain scikit-learn estimator fitted on exactly these numeric columns in this
    order (its `feature_names_in_`): it then only reads positions. Skipping the DataFrame path saves
    about 0.6 ms of scikit-learn input checks per request (bench/serving.py). Pipelines and column
    transformers select by name and keep the DataFrame.
    """
    cls = type(model)
    if not cls.__module__.startswith("sklearn.") or columns is None or cls.__name__ in _BY_NAME:
        return False
    names = getattr(model, "feature_names_in_", None)
    if names is None or [str(n) for n in names] != [c.name for c in columns]:
        return False
    return all(c.dtype.startswith(("float", "int", "uint", "bool")) for c in columns)


def feature_step(model: Any) -> Any:
    """The model's `FeatureStep` (a feature pipeline), its feature set resolved now, else None.

    Resolving at load makes a server that may not run the feature set (a plugin not installed, a module
    missing from MAESTRALE_ESTIMATOR_MODULES) fail at start or reload with that reason, not on requests.
    """
    if type(model).__name__ != "Pipeline":
        return None  # only a Pipeline can hold one: no need to import the features package
    from maestrale.features.step import step_of

    step = step_of(model)
    if step is not None:
        step.check()
    return step


def columns_of(meta: ModelVersion, model: Any) -> list[ColumnSchema] | None:
    """The input columns: the registered input schema, else the estimator's `feature_names_in_` (float)."""
    if meta.input_schema:
        return list(meta.input_schema)
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [ColumnSchema(name=str(n), dtype="float64") for n in names]


def load_served(
    registry: Any, ref: ModelRef | str, alias: str | None = None, trusted_types: list[str] | None = None
) -> ServedModel:
    """Load the version `ref` points at as a `ServedModel` (what `maestrale serve` and the MLServer
    runtime serve alike): sha256 checked, input columns, positional fast path, feature pipeline.

    >>> served = load_served(Registry(), "pv-nrel-50@champion", alias="champion")  # doctest: +SKIP
    """
    # Resolve first, then load the exact version: an alias moving in between cannot mix metadata
    # of one version with the bytes of another.
    meta = registry.get_version(str(ref))
    loaded = registry.load_version(meta.ref, trusted_types=trusted_types)
    columns = columns_of(meta, loaded.model)
    fast = positional(loaded.model, columns)
    if fast:
        warnings.filterwarnings("ignore", message=_NAMES_WARNING, category=UserWarning)
    step = feature_step(loaded.model)
    return ServedModel(
        name=meta.name, version=meta.version, sha256=loaded.sha256, model=loaded.model, meta=meta,
        columns=columns, alias=alias, loaded_at=time.time(), positional=fast,
        time_column=step.time_column if step else None, timezone=step.timezone if step else None,
    )  # fmt: skip


class _Slot:
    """The current model of one name; `current` is only ever replaced whole (the atomic swap)."""

    def __init__(self, ref: ModelRef, served: ServedModel) -> None:
        self.ref, self.current = ref, served
        self.lock = threading.Lock()  # guards `pending` (the pool runs one reload at a time)
        self.pending: Future[bool] | None = None


class ModelRepository:
    """`ModelRepository(registry, ["pv@champion", "wind:3"])`: load every reference now, serve by name.

    `on_swap(served)` is called after each swap (and for each initial load), e.g. to set a gauge;
    `on_reload_error(name, exc)` after a failed reload (the old version keeps serving).
    """

    def __init__(
        self,
        registry: Any,
        refs: Sequence[str],
        *,
        on_swap: Callable[[ServedModel], None] | None = None,
        on_reload_error: Callable[[str, BaseException], None] | None = None,
        trusted_types: list[str] | None = None,
    ) -> None:
        if not refs:
            raise InvalidInput("serve at least one model, e.g. pv-forecast@champion")
        self.registry, self.trusted_types = registry, trusted_types
        self.on_swap, self.on_reload_error = on_swap, on_reload_error
        self._slots: dict[str, _Slot] = {}
        for raw in refs:
            ref = ModelRef.parse(raw)
            if ref.name in self._slots:
                raise InvalidInput(
                    f"{ref.name!r} is given twice ({raw}): a server serves one version per name"
                )
            self._slots[ref.name] = _Slot(ref, self._load(ref, ref.alias))
        for slot in self._slots.values():
            self._swapped(slot.current)
        # Loads run here, never on a request or bus thread; one at a time keeps memory at old + one new.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maestrale-reload")

    def _load(self, ref: ModelRef, alias: str | None) -> ServedModel:
        return load_served(self.registry, ref, alias, self.trusted_types)

    def _swapped(self, served: ServedModel) -> None:
        if self.on_swap is not None:
            self.on_swap(served)

    # -- reads (request path) ---------------------------------------------------------------------
    def get(self, name: str) -> ServedModel:
        """The model currently served under `name` (NotFound if this server does not serve it)."""
        slot = self._slots.get(name)
        if slot is None:
            served = ", ".join(sorted(self._slots))
            raise NotFound(f"model {name!r} is not served here; this server serves: {served}")
        return slot.current

    def names(self) -> list[str]:
        """Served model names, sorted."""
        return sorted(self._slots)

    def ref(self, name: str) -> ModelRef:
        """The reference a name was served from (`pv@champion`, `wind:3`)."""
        return self._slots[name].ref

    def following(self) -> dict[str, str]:
        """`{name: alias}` of the models that follow an alias (the ones that reload)."""
        return {n: s.ref.alias for n, s in self._slots.items() if s.ref.alias is not None}

    def ready(self) -> bool:
        """True when every slot holds a model (always, once constructed: loads happen in `__init__`)."""
        return all(s.current is not None for s in self._slots.values())

    # -- reloads ----------------------------------------------------------------------------------
    def reload(self, name: str) -> Future[bool]:
        """Resolve `name`'s alias again and, if it moved, load that version in the background and swap.

        Returns a Future: True when a new version was swapped in, False when nothing changed (or the
        name follows no alias), an exception when the load failed (the old version keeps serving).
        Calls made while a reload of `name` is still queued share that reload.
        """
        slot = self._slots.get(name)
        done: Future[bool] = Future()
        if slot is None or slot.ref.alias is None:
            done.set_result(False)
            return done
        with slot.lock:
            if slot.pending is not None and not slot.pending.running() and not slot.pending.done():
                return slot.pending  # queued, not started: it will see the newest alias anyway
            slot.pending = self._pool.submit(self._reload, slot)
            return slot.pending

    def _reload(self, slot: _Slot) -> bool:
        ref = slot.ref
        try:
            meta = self.registry.get_version(str(ref))
            if meta.version == slot.current.version:
                return False
            served = self._load(ModelRef(ref.name, version=meta.version), ref.alias)
        except Exception as exc:
            log.warning("reload of %s failed; still serving version %d: %s", ref, slot.current.version, exc)
            if self.on_reload_error is not None:
                self.on_reload_error(ref.name, exc)
            raise
        old = slot.current.version
        slot.current = served  # the swap: one reference assignment, atomic under the GIL
        log.info("%s: now serving version %d (was %d)", ref, served.version, old)
        self._swapped(served)
        return True

    def close(self) -> None:
        """Stop the reload thread (a running load finishes first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
