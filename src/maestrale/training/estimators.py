"""Estimators by name: an alias, a class of scikit-learn, LightGBM or XGBoost, or an admin-trusted plugin.

>>> est, params = build_estimator("hgb", {"max_iter": 20})
>>> type(est).__name__, params["random_state"]
('HistGradientBoostingRegressor', 0)

A spec names one of:

- an alias: `hgb`, `ridge`, `lightgbm`, `xgboost`;
- `module:Class`, a scikit-learn-style estimator class (a subclass of `sklearn.base.BaseEstimator`
  with `fit` and `predict`, not abstract) from `sklearn.*`, `lightgbm` or `xgboost`;
- a plugin of the `maestrale.estimators` entry-point group (installed by an admin: a class or a
  factory(**params) -> estimator). A plugin package declares, in its pyproject.toml::

    [project.entry-points."maestrale.estimators"]
    pv-physics = "acme_models.pv:PhysicsRegressor"

- `module:Name` from a module the admin lists in `MAESTRALE_ESTIMATOR_MODULES`
  (`Settings.estimator_modules`): such a class, or a factory function defined in that module.

Nothing else is imported, and nothing is called before it is known to be one of these: specs arrive
over REST and the bus, and `estimator: os:system` must not run a command (see `coderefs`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from maestrale.errors import InvalidInput
from maestrale.training import coderefs

ENTRY_POINT_GROUP = "maestrale.estimators"
ALIASES = {
    "hgb": "sklearn.ensemble:HistGradientBoostingRegressor",
    "ridge": "sklearn.linear_model:Ridge",
    "lightgbm": "lightgbm:LGBMRegressor",
    "xgboost": "xgboost:XGBRegressor",
}
#: Libraries whose estimator classes any spec may name.
LIBRARIES = ("sklearn.", "lightgbm", "xgboost")
HOW = (
    "write it as module:Class (e.g. sklearn.ensemble:HistGradientBoostingRegressor, lightgbm:LGBMRegressor, "
    f"xgboost:XGBRegressor), an alias ({', '.join(ALIASES)}) or a plugin name from the entry-point group "
    f"{ENTRY_POINT_GROUP}"
)
OWN = (
    f"package your own as a plugin: declare it in the {ENTRY_POINT_GROUP!r} entry-point group of a "
    'package installed on the workers (e.g. pv-physics = "acme_models.pv:PhysicsRegressor"), or have '
    "the admin list its module in MAESTRALE_ESTIMATOR_MODULES"
)
# Seeded by default so `maestrale reproduce` gives the same model; `random_state: null` opts out.
DEFAULT_SEED = 0
_PLUGIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@functools.lru_cache(maxsize=1)
def plugins() -> dict[str, Any]:
    """Installed estimator plugins by name (entry points of the `maestrale.estimators` group)."""
    return coderefs.entry_points_of(ENTRY_POINT_GROUP)


def _allowed(module: str) -> bool:
    return coderefs.module_allowed(module, LIBRARIES + coderefs.admin_modules())


def _refused(ref: str) -> str:
    return f"{ref} is not an estimator class from scikit-learn, LightGBM or XGBoost; {OWN}"


def check_estimator_ref(ref: str) -> str:
    """Check an estimator reference's form and module prefix, without importing anything.

    Cheap enough for spec validation in the API and the CLI; `resolve_estimator` checks again, and
    checks what the name really is, before anything is called.

    >>> check_estimator_ref("sklearn.linear_model:Ridge")
    'sklearn.linear_model:Ridge'
    >>> check_estimator_ref("os:system")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: os:system is not an estimator class from scikit-learn, LightGBM or XGBoost; package ...
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"estimator is empty: {HOW}")
    if ref in ALIASES:
        return ref
    if ":" in ref:
        module, _ = coderefs.split_ref(ref, "estimator", HOW)
        if not _allowed(module):
            raise ValueError(_refused(ref))
        return ref
    if "." in ref and ref.rsplit(".", 1)[-1][:1].isupper():
        module, cls = ref.rsplit(".", 1)
        raise ValueError(f"estimator {ref!r} needs a colon before the class: write {module}:{cls}")
    if _PLUGIN_RE.match(ref):
        if coderefs.installed(plugins, ref):
            return ref
        installed = ", ".join(sorted(plugins())) or "none installed"
        raise ValueError(f"unknown estimator {ref!r} (plugins: {installed}): {HOW}")
    raise ValueError(f"estimator {ref!r} is not understood: {HOW}")


def _check_class(obj: Any, ref: str) -> None:
    """Refuse anything but a concrete scikit-learn-style estimator class defined under an allowed prefix."""
    from sklearn.base import BaseEstimator

    if not (inspect.isclass(obj) and issubclass(obj, BaseEstimator)):
        kind = "a class, but not a scikit-learn BaseEstimator" if inspect.isclass(obj) else type(obj).__name__
        raise InvalidInput(f"{_refused(ref)} (it is {kind})")
    missing = [m for m in ("fit", "predict") if not callable(getattr(obj, m, None))]
    if missing:
        raise InvalidInput(
            f"estimator {ref!r} has no {' or '.join(missing)}: Maestrale trains regressors with "
            "fit(X, y) and predict(X), e.g. hgb, ridge, lightgbm"
        )
    if inspect.isabstract(obj):
        raise InvalidInput(f"estimator {ref!r} is an abstract base class: name a concrete one, e.g. ridge")
    if not coderefs.defined_under(obj, LIBRARIES + coderefs.admin_modules()):
        raise InvalidInput(
            f"estimator {ref!r} is {obj.__module__}.{obj.__qualname__}, imported from outside "
            f"scikit-learn, LightGBM, XGBoost and MAESTRALE_ESTIMATOR_MODULES; {OWN}"
        )


def resolve_estimator(ref: str) -> tuple[Callable[..., Any], str]:
    """`(class or factory, its qualified name)` for an estimator reference, checked before any call.

    A `module:Name` must be a concrete `BaseEstimator` subclass with fit and predict from an allowed
    module; only a plugin or a function defined in an admin's module may be a factory.

    >>> resolve_estimator("ridge")[1]
    'sklearn.linear_model._ridge.Ridge'
    """
    try:
        check_estimator_ref(ref)  # again: the spec may have been built without validation
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    target = ALIASES.get(ref, ref)
    obj: Any
    if ":" in target:
        module_name, attr = coderefs.split_ref(target, "estimator", HOW)
        obj = coderefs.import_member(ref, module_name, attr, "estimator")
        admin = coderefs.admin_modules()
        is_admin_factory = (
            inspect.isfunction(obj)
            and coderefs.module_allowed(module_name, admin)
            and coderefs.defined_under(obj, admin)
        )
        if not is_admin_factory:
            _check_class(obj, ref)
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
