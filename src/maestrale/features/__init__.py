"""Features that travel with the model: the spec's feature building as the first step of its pipeline.

>>> from maestrale import Registry
>>> model = Registry().load("pv-piemonte@champion")  # Pipeline([("features", FeatureStep), ("model", …)])
... # doctest: +SKIP
>>> model.predict(weather)  # time (column or index) + ghi, ghi_clear, temp_air: no features by hand
... # doctest: +SKIP

A model trained from a spec with `feature_set:` is registered as
`Pipeline([("features", FeatureStep(...)), ("model", estimator)])`. `FeatureStep` holds only data (the
feature set's name, the time column, the zone of naive times, the input and output columns); it finds
the feature function at predict time by the rules a spec uses (built-ins, `maestrale.feature_sets`
plugins, `MAESTRALE_ESTIMATOR_MODULES`), so a stored model can never name code that a spec could
not. It is on Maestrale's audited list of artifact types (`maestrale.registry.trusted_types`), so
these models load with default arguments, from `maestrale serve`, `Registry.load` or MLServer.

This package lives outside `maestrale.training` on purpose: a model server imports it to load a
model; of the training code it needs only the feature-set lookup (`maestrale.training.features`,
light: no trainer, no data sources), which is what makes the rules of a spec apply here.

A feature function of your own declares what it reads, so that missing inputs are named up front and
optional ones are recorded rather than silently dropped::

    from maestrale.features import declare_inputs

    @declare_inputs(required=["ghi", "temp_air"], optional=["wind_speed"])
    def pv_frame(frame): ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from maestrale.features.step import FeatureInputError, FeatureStep

F = TypeVar("F", bound=Callable[..., Any])


def declare_inputs(required: Iterable[str], optional: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator: the input columns a feature function needs (`required`) and uses when present.

    >>> @declare_inputs(required=["ghi"], optional=["ghi_clear"])
    ... def f(frame):
    ...     return frame
    >>> f.required_inputs, f.optional_inputs
    (('ghi',), ('ghi_clear',))
    """
    req, opt = tuple(required), tuple(optional)

    def mark(fn: F) -> F:
        fn.required_inputs = req  # type: ignore[attr-defined]
        fn.optional_inputs = opt  # type: ignore[attr-defined]
        return fn

    return mark


def __getattr__(name: str) -> Any:
    # the step needs pandas and scikit-learn: loaded on first use, not with `import maestrale.features`
    if name in ("FeatureStep", "FeatureInputError"):
        from maestrale.features import step

        return getattr(step, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FeatureInputError", "FeatureStep", "declare_inputs"]
