"""Estimators by name: `module:Class`, a friendly alias, or a plugin in the `maestrale.estimators` group.

>>> est, params = build_estimator("hgb", {"max_iter": 20})
>>> type(est).__name__, params["random_state"]
('HistGradientBoostingRegressor', 0)

A plugin package declares, in its pyproject.toml::

    [project.entry-points."maestrale.estimators"]
    pv-physics = "acme_models.pv:PhysicsRegressor"    # a class, or a factory(**params) -> estimator
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

from maestrale.errors import InvalidInput

ENTRY_POINT_GROUP = "maestrale.estimators"
ALIASES = {
    "hgb": "sklearn.ensemble:HistGradientBoostingRegressor",
    "ridge": "sklearn.linear_model:Ridge",
    "lightgbm": "lightgbm:LGBMRegressor",
    "xgboost": "xgboost:XGBRegressor",
}
HOW = (
    "write it as module:Class (e.g. sklearn.ensemble:HistGradientBoostingRegressor, lightgbm:LGBMRegressor, "
    f"xgboost:XGBRegressor), an alias ({', '.join(ALIASES)}) or a plugin name from the entry-point group "
    f"{ENTRY_POINT_GROUP}"
)
# Seeded by default so `maestrale reproduce` gives the same model; `random_state: null` opts out.
DEFAULT_SEED = 0
_CALLABLE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_PLUGIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@functools.lru_cache(maxsize=1)
def plugins() -> dict[str, Any]:
    """Installed estimator plugins by name (entry points of the `maestrale.estimators` group)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_estimator_ref(ref: str) -> str:
    """Check how an estimator is written, without importing it (spec validation stays cheap).

    >>> check_estimator_ref("sklearn.linear_model:Ridge")
    'sklearn.linear_model:Ridge'
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"estimator is empty: {HOW}")
    if _CALLABLE_RE.match(ref) or ref in ALIASES:
        return ref
    if "." in ref and ":" not in ref and ref.rsplit(".", 1)[-1][:1].isupper():
        module, cls = ref.rsplit(".", 1)
        raise ValueError(f"estimator {ref!r} needs a colon before the class: write {module}:{cls}")
    if _PLUGIN_RE.match(ref):
        if ref in plugins():
            return ref
        plugins.cache_clear()  # a plugin installed since the last look
        if ref in plugins():
            return ref
        installed = ", ".join(sorted(plugins())) or "none installed"
        raise ValueError(f"unknown estimator {ref!r} (plugins: {installed}): {HOW}")
    raise ValueError(f"estimator {ref!r} is not understood: {HOW}")


def resolve_estimator(ref: str) -> tuple[Callable[..., Any], str]:
    """`(class or factory, its qualified name)` for an estimator reference.

    >>> resolve_estimator("ridge")[1]
    'sklearn.linear_model._ridge.Ridge'
    """
    check_estimator_ref(ref)
    target = ALIASES.get(ref, ref)
    if _CALLABLE_RE.match(target):
        module_name, attr = target.split(":", 1)
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            hint = {"lightgbm": "maestrale[lightgbm]", "xgboost": "maestrale[xgboost]"}.get(
                module_name.split(".")[0], module_name.split(".")[0]
            )
            raise InvalidInput(
                f"estimator {ref!r}: cannot import module {module_name!r} ({exc}); install it "
                f"(pip install '{hint}') or {HOW}"
            ) from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise InvalidInput(f"estimator {ref!r}: module {module_name!r} has no {attr!r}; {HOW}")
            obj = getattr(obj, part)
    else:
        try:
            obj = plugins()[target].load()
        except Exception as exc:  # a broken plugin must say which one and why
            raise InvalidInput(f"estimator plugin {ref!r} failed to load: {exc}") from exc
    if not callable(obj):
        raise InvalidInput(f"estimator {ref!r} is a {type(obj).__name__}, not a class or factory; {HOW}")
    return obj, f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def estimator_name(ref: str) -> str:
    """The public dotted name of an estimator reference, as recorded in params.

    >>> estimator_name("hgb")
    'sklearn.ensemble.HistGradientBoostingRegressor'
    """
    target = ALIASES.get(ref, ref)
    return target.replace(":", ".") if ":" in target else f"plugin:{target}"


def _accepts(factory: Callable[..., Any], param: str) -> bool:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    return param in sig.parameters


def _pipeline_steps(estimator: Any) -> list[tuple[str, Any]] | None:
    """The steps of an sklearn Pipeline, else None (sklearn is imported only if already loaded)."""
    import sys

    # a Pipeline can only exist if sklearn.pipeline was imported: no need to load sklearn to ask
    pipeline = sys.modules.get("sklearn.pipeline")
    if pipeline is not None and isinstance(estimator, pipeline.Pipeline):
        return list(estimator.steps)
    return None


def _fit_accepts_weights(estimator: Any) -> tuple[bool, str]:
    """(whether `estimator.fit` takes `sample_weight`, why not in words for the error message)."""
    fit = getattr(estimator, "fit", None)
    if not callable(fit):
        return False, "it has no fit method"
    try:
        sig = inspect.signature(fit)
    except (TypeError, ValueError):
        # a compiled fit without a readable signature: let fit itself decide rather than refuse it
        return True, ""
    accepts = any(
        (p.name == "sample_weight" and p.kind is not p.VAR_POSITIONAL) or p.kind is p.VAR_KEYWORD
        for p in sig.parameters.values()
    )
    return accepts, f"its fit{sig} has no sample_weight parameter"


def sample_weight_key(estimator: Any, ref: str) -> str:
    """The `fit` keyword that carries per-row weights to `estimator`, checked before anything is fitted.

    `sample_weight` for a plain estimator; `step__sample_weight` for an sklearn Pipeline, whose fit
    routes `name__param` to that step (nested pipelines chain the names). A fit with `**kwargs`
    counts as accepting weights. Raises `InvalidInput` naming the estimator when its fit cannot take
    them, so a spec with `sample_weight:` fails at once instead of after the backtest.

    >>> est, _ = build_estimator("ridge")
    >>> sample_weight_key(est, "ridge")
    'sample_weight'
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> sample_weight_key(make_pipeline(StandardScaler(), est), "acme.models:pipeline")
    'ridge__sample_weight'
    """
    prefix, final, where = "", estimator, ""
    while (steps := _pipeline_steps(final)) is not None and steps:
        name, final = steps[-1]
        prefix += f"{name}__"
        where = f"the last step {prefix[:-2]!r} of "
    accepts, why = _fit_accepts_weights(final)
    if not accepts:
        raise InvalidInput(
            f"{where}estimator {ref!r} ({type(final).__name__}) does not accept sample_weight: {why}; "
            "remove `sample_weight:` from the spec, or choose an estimator that supports it, "
            "e.g. hgb, ridge, lightgbm"
        )
    return f"{prefix}sample_weight"


def build_estimator(ref: str, params: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """A fresh, unfitted estimator and the parameters it was built with (defaults filled in).

    Defaults: `random_state=0` when the estimator takes one and the spec does not say;
    `verbose=-1` for LightGBM (its per-iteration warnings are noise in logs).
    """
    factory, qualname = resolve_estimator(ref)
    effective = dict(params or {})
    if "random_state" not in effective and _accepts(factory, "random_state"):
        effective["random_state"] = DEFAULT_SEED
    if qualname.startswith("lightgbm.") and "verbose" not in effective:
        effective["verbose"] = -1
    try:
        estimator = factory(**effective)
    except TypeError as exc:
        try:
            accepted = [p for p in inspect.signature(factory).parameters if p not in {"self", "kwargs"}]
        except (TypeError, ValueError):
            accepted = []
        listing = f"; it accepts: {', '.join(accepted)}" if accepted else ""
        raise InvalidInput(f"params do not fit estimator {qualname}: {exc}{listing}") from None
    if isinstance(estimator, type):  # a factory that hands back a class
        estimator = estimator()
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise InvalidInput(
            f"estimator {ref!r} built a {type(estimator).__name__} without fit/predict: Maestrale trains "
            "scikit-learn-API estimators (fit(X, y), predict(X))"
        )
    return estimator, effective
