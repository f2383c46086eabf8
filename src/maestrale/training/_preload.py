"""Imported once by the training worker's fork server, so each training child starts warm.

Without it every child pays ~1.5 s of imports (skops, scikit-learn's estimators, pyarrow) and the
first-call costs of the metadata helpers before it fits anything.
"""

from __future__ import annotations

import contextlib
import importlib

import pandas  # noqa: F401
import pyarrow.parquet  # noqa: F401
import sklearn.ensemble
import sklearn.linear_model  # noqa: F401
import skops.io  # noqa: F401

import maestrale.datasets
import maestrale.registry.artifacts
import maestrale.registry.client
import maestrale.registry.store  # SQLAlchemy: ~0.4 s of imports a child would pay on Registry()
import maestrale.stats.profile
import maestrale.training.trainer  # noqa: F401
from maestrale.registry.metadata import code_version, package_versions

for optional in ("lightgbm", "xgboost"):  # native estimators, when installed
    with contextlib.suppress(ImportError):
        importlib.import_module(optional)

code_version()  # a git subprocess, once per fork server instead of once per training
package_versions()
