"""Training from declarative specs: load a spec, train (and register) one model or a fleet, reproduce.

>>> from maestrale.training import load_spec, expand_fleet, train, reproduce
>>> spec = load_spec("examples/specs/pv-nrel-50.yaml")  # doctest: +SKIP
>>> results = [train(member, reg) for member in expand_fleet(spec)]  # doctest: +SKIP
>>> reproduce(reg, results[0].ref).identical  # doctest: +SKIP
True

Importing this package is cheap: pandas and scikit-learn load when a training starts, so the API and
the CLI can validate specs without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {
    "TrainingSpec": "maestrale.training.spec",
    "SpecError": "maestrale.training.spec",
    "load_spec": "maestrale.training.spec",
    "expand_fleet": "maestrale.training.fleet",
    "DataVersion": "maestrale.training.sources",
    "load_data": "maestrale.training.sources",
    "DataError": "maestrale.training.validate",
    "TrainingTimeout": "maestrale.training.evaluate",
    "FoldResult": "maestrale.training.evaluate",
    "TrainingResult": "maestrale.training.trainer",
    "train": "maestrale.training.trainer",
    "ReproduceReport": "maestrale.training.reproduction",
    "reproduce": "maestrale.training.reproduction",
}
__all__ = [
    "DataError",
    "DataVersion",
    "FoldResult",
    "ReproduceReport",
    "SpecError",
    "TrainingResult",
    "TrainingSpec",
    "TrainingTimeout",
    "expand_fleet",
    "load_data",
    "load_spec",
    "reproduce",
    "train",
]

if TYPE_CHECKING:
    from maestrale.training.evaluate import FoldResult, TrainingTimeout
    from maestrale.training.fleet import expand_fleet
    from maestrale.training.reproduction import ReproduceReport, reproduce
    from maestrale.training.sources import DataVersion, load_data
    from maestrale.training.spec import SpecError, TrainingSpec, load_spec
    from maestrale.training.trainer import TrainingResult, train
    from maestrale.training.validate import DataError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maestrale.training' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
