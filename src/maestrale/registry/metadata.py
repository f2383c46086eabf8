"""What is recorded about a version besides its bytes: input schema, data fingerprint, code and packages."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from typing import Any

from maestrale.registry.types import ColumnSchema

# Recorded for every version: enough to rebuild the environment that produced it.
CORE_PACKAGES = ("maestrale", "numpy", "pandas", "scikit-learn", "scipy", "skops")
_MODULE_TO_DIST = {"sklearn": "scikit-learn", "lightgbm": "lightgbm", "xgboost": "xgboost", "onnx": "onnx"}


def input_schema(example: Any) -> list[ColumnSchema] | None:
    """Column names and dtypes of an input example (DataFrame, ndarray or dict of columns).

    >>> import pandas as pd
    >>> input_schema(pd.DataFrame({"ghi": [1.0]}))
    [ColumnSchema(name='ghi', dtype='float64')]
    """
    if example is None:
        return None
    if hasattr(example, "dtypes") and hasattr(example, "columns"):
        return [ColumnSchema(name=str(c), dtype=str(t)) for c, t in example.dtypes.items()]
    if hasattr(example, "dtype") and hasattr(example, "shape"):
        width = example.shape[1] if len(example.shape) > 1 else 1
        return [ColumnSchema(name=f"f{i}", dtype=str(example.dtype)) for i in range(width)]
    if isinstance(example, dict):
        import numpy as np

        return [ColumnSchema(name=str(k), dtype=str(np.asarray(v).dtype)) for k, v in example.items()]
    raise TypeError(
        f"input_example must be a pandas DataFrame, a numpy array or a dict of columns, "
        f"not {type(example).__name__}"
    )


def fingerprint(data: Any) -> str:
    """A sha256 of the training data's content (row order and column names included).

    >>> import pandas as pd
    >>> fingerprint(pd.DataFrame({"a": [1, 2]}))[:12]
    'sha256:0ee6b'
    """
    h = hashlib.sha256()
    if hasattr(data, "columns"):
        import pandas as pd

        h.update("\x1f".join(map(str, data.columns)).encode())
        h.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    elif hasattr(data, "tobytes"):
        h.update(str(data.shape).encode())
        h.update(data.tobytes())
    elif isinstance(data, bytes | bytearray):
        h.update(data)
    else:
        raise TypeError(f"cannot fingerprint a {type(data).__name__}; pass a DataFrame, ndarray or bytes")
    return "sha256:" + h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str | None:
    """The git commit of the working directory (`+dirty` if modified), or MAESTRALE_CODE_VERSION."""
    if env := os.environ.get("MAESTRALE_CODE_VERSION"):
        return env
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


@functools.lru_cache(maxsize=64)
def _dist_version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def package_versions(model: object | None = None) -> dict[str, str]:
    """Versions of Python, the core packages and the package the model's class comes from."""
    out = {"python": platform.python_version()}
    names = list(CORE_PACKAGES)
    if model is not None:
        top = type(model).__module__.split(".", 1)[0]
        names.append(_MODULE_TO_DIST.get(top, top))
    for dist in names:
        if (v := _dist_version(dist)) is not None:
            out[dist] = v
    return out
