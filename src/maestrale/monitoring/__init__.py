"""Monitoring: production performance on late actuals, drift, policies, retraining and promotion.

>>> from maestrale.monitoring import MonitorStore, Monitor, load_policy  # doctest: +SKIP

Modules: `ingest` (record validation), `store` (SQL), `performance` (windowed metrics), `policy`
(YAML policies), `retrain` (moved spec), `promotion` (champion/challenger), `monitor` (the loop),
`service` (`maestrale monitor`), `client` (`maestrale.log_predictions`, `log_actuals`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "MonitorStore": "maestrale.monitoring.store",
    "Monitor": "maestrale.monitoring.monitor",
    "MonitorService": "maestrale.monitoring.service",
    "Policy": "maestrale.monitoring.policy",
    "load_policy": "maestrale.monitoring.policy",
    "default_policy": "maestrale.monitoring.policy",
    "performance": "maestrale.monitoring.performance",
    "log_predictions": "maestrale.monitoring.client",
    "log_actuals": "maestrale.monitoring.client",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maestrale.monitoring' has no attribute {name!r}")
    return getattr(import_module(module), name)
