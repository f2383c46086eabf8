"""Maestrale: registry, training, monitoring and serving for energy-forecasting model fleets.

`import maestrale` is cheap: names load on first use.

>>> from maestrale import Registry
>>> reg = Registry()  # from MAESTRALE_* settings  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Registry": "maestrale.registry.client",
    "LoadedModel": "maestrale.registry.client",
    "ModelVersion": "maestrale.registry.types",
    "RegisteredModel": "maestrale.registry.types",
    "ModelRef": "maestrale.refs",
    "Settings": "maestrale.config",
    "MaestraleError": "maestrale.errors",
    "NotFound": "maestrale.errors",
    "InvalidInput": "maestrale.errors",
    "InvalidName": "maestrale.errors",
    "IntegrityError": "maestrale.errors",
    "UnsupportedModel": "maestrale.errors",
    "UntrustedArtifact": "maestrale.errors",
    "log_predictions": "maestrale.monitoring.client",
    "log_actuals": "maestrale.monitoring.client",
}
__all__ = [
    "IntegrityError",
    "InvalidInput",
    "InvalidName",
    "LoadedModel",
    "MaestraleError",
    "ModelRef",
    "ModelVersion",
    "NotFound",
    "RegisteredModel",
    "Registry",
    "Settings",
    "UnsupportedModel",
    "UntrustedArtifact",
    "__version__",
    "log_actuals",
    "log_predictions",
]

if TYPE_CHECKING:
    from maestrale.config import Settings
    from maestrale.errors import (
        IntegrityError,
        InvalidInput,
        InvalidName,
        MaestraleError,
        NotFound,
        UnsupportedModel,
        UntrustedArtifact,
    )
    from maestrale.monitoring.client import log_actuals, log_predictions
    from maestrale.refs import ModelRef
    from maestrale.registry.client import LoadedModel, Registry
    from maestrale.registry.types import ModelVersion, RegisteredModel


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maestrale' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
