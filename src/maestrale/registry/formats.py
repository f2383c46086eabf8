"""Serialisation of models into safe formats, chosen from the object's type.

| format   | objects                                       | loads as                          |
|----------|-----------------------------------------------|-----------------------------------|
| skops    | scikit-learn estimators, Pipelines, ColumnTransformers | the same object              |
| lightgbm | `lightgbm.Booster`, `LGBMRegressor`/`LGBMClassifier` | `lightgbm.Booster` (native text) |
| xgboost  | `xgboost.Booster`, `XGBRegressor`/`XGBClassifier`    | the same class (native UBJSON)   |
| onnx     | `onnx.ModelProto`                             | `OnnxModel` (onnxruntime session) |
| pickle   | anything, only when asked with `format="pickle"` | the object, only with `trusted=True` |

skops refuses to rebuild types it does not know; Maestrale trusts only types from the modules in
`SAFE_MODULES` plus those the caller names with `trusted_types=`.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from typing import Any

from maestrale.errors import InvalidInput, UnsupportedModel, UntrustedArtifact

FORMATS = ("skops", "lightgbm", "xgboost", "onnx", "pickle")
SAFE_MODULES = ("sklearn", "numpy", "scipy", "builtins", "collections", "lightgbm.sklearn", "xgboost.sklearn")
SUPPORTED = (
    "scikit-learn estimators and pipelines (skops), LightGBM and XGBoost models (native formats), "
    "ONNX ModelProto; anything else only with format='pickle' (loading then needs trusted=True)"
)


@dataclass(frozen=True, slots=True)
class Serialized:
    """Bytes ready for the artifact store, with how to read them back."""

    data: bytes
    format: str
    flavor: str


def flavor_of(obj: object) -> str:
    """Fully qualified class name, e.g. `sklearn.pipeline.Pipeline`."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _mro_modules(obj: object) -> list[str]:
    return [c.__module__ for c in type(obj).__mro__]


def detect_format(model: object) -> str:
    """Choose the safe format for `model`, or raise `UnsupportedModel` saying what is supported."""
    mods = _mro_modules(model)
    if any(m.startswith("lightgbm") for m in mods):
        return "lightgbm"
    if any(m.startswith("xgboost") for m in mods):
        return "xgboost"
    if any(m.startswith("onnx") for m in mods) and type(model).__name__ == "ModelProto":
        return "onnx"
    if any(m.startswith("sklearn") for m in mods):
        return "skops"
    raise UnsupportedModel(f"cannot store a {flavor_of(model)} safely; supported: {SUPPORTED}")


def serialize(model: object, format: str | None = None, trusted_types: list[str] | None = None) -> Serialized:
    """Turn `model` into bytes in a safe format (or `pickle` when asked explicitly).

    >>> from sklearn.linear_model import Ridge
    >>> serialize(Ridge()).format
    'skops'
    """
    fmt = format or detect_format(model)
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    flavor = flavor_of(model)
    if fmt == "skops":
        return Serialized(_skops_dumps(model, trusted_types), fmt, flavor)
    if fmt == "lightgbm":
        booster = model if type(model).__name__ == "Booster" else model.booster_  # type: ignore[attr-defined]
        return Serialized(booster.model_to_string().encode(), fmt, flavor)
    if fmt == "xgboost":
        return Serialized(_xgb_dumps(model), fmt, flavor)
    if fmt == "onnx":
        return Serialized(model.SerializeToString(), fmt, flavor)  # type: ignore[attr-defined]
    return Serialized(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), fmt, flavor)


def deserialize(
    data: bytes, format: str, flavor: str, *, trusted: bool = False, trusted_types: list[str] | None = None
) -> Any:
    """Rebuild a model from bytes already checked against their sha256."""
    if format == "skops":
        return _skops_loads(data, flavor, trusted, trusted_types)
    if format == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_str=data.decode())
    if format == "xgboost":
        return _xgb_loads(data, flavor)
    if format == "onnx":
        return OnnxModel(data)
    if format == "pickle":
        if not trusted:
            raise UntrustedArtifact(
                f"this {flavor} artifact is a pickle, and loading a pickle can run arbitrary code: "
                "pass trusted=True only if you trust everyone who can write to this registry"
            )
        return pickle.loads(data)
    raise InvalidInput(f"unknown artifact format {format!r}; this Maestrale reads {', '.join(FORMATS)}")


def _is_safe_type(name: str, extra: list[str] | None) -> bool:
    if extra and name in extra:
        return True
    return any(name == m or name.startswith(m + ".") for m in SAFE_MODULES)


def _only_safe_types(obj: object, extra: list[str] | None, limit: int = 200_000) -> bool:
    """True if every object reachable from `obj` is of a type skops may rebuild without asking.

    A cheap walk over attributes and containers; when it cannot prove safety (a foreign type, a
    lambda, a very large graph) the caller falls back to skops' own, slower audit.
    """
    import numpy as np

    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, str | bytes | int | float | bool | complex):
            continue
        seen.add(id(item))
        if len(seen) > limit:
            return False
        if isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend(item.ravel().tolist())
            continue
        if isinstance(item, np.generic | np.dtype):
            continue
        if isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
            continue
        cls = type(item)
        if cls.__name__ in ("function", "builtin_function_or_method", "ufunc", "partial", "method"):
            name = f"{getattr(item, '__module__', '') or ''}.{getattr(item, '__qualname__', '')}"
            if not _is_safe_type(name, extra):
                return False
            continue
        if not _is_safe_type(f"{cls.__module__}.{cls.__qualname__}", extra):
            return False
        state = getattr(item, "__dict__", None)
        if state is not None:
            stack.extend(state.values())
    return True


def _skops_dumps(model: object, trusted_types: list[str] | None) -> bytes:
    import skops.io as sio

    data = sio.dumps(model)
    if _only_safe_types(model, trusted_types):
        return data  # proven safe without re-reading the archive (skops' audit costs as much as the dump)
    # refuse now what could not be loaded safely later, while the user still has the object
    unsafe = [t for t in sio.get_untrusted_types(data=data) if not _is_safe_type(t, trusted_types)]
    if unsafe:
        raise UnsupportedModel(
            f"{flavor_of(model)} contains types that cannot be loaded safely: {', '.join(unsafe)}. "
            "If they are your own code, pass trusted_types=[...] to register and to load; "
            f"supported: {SUPPORTED}"
        )
    return data


# Types already audited as safe in this process: later loads need one pass over the archive, not two.
_KNOWN_SAFE: set[str] = set()


def _skops_loads(data: bytes, flavor: str, trusted: bool, trusted_types: list[str] | None) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return sio.loads(data, trusted=sorted(_KNOWN_SAFE | set(trusted_types or ())))
    except UntrustedTypesFoundException:
        pass  # a type not seen yet: audit it below
    untrusted = sio.get_untrusted_types(data=data)
    unsafe = [t for t in untrusted if not _is_safe_type(t, trusted_types)]
    if unsafe and not trusted:
        raise UntrustedArtifact(
            f"this {flavor} artifact contains types Maestrale does not trust: {', '.join(unsafe)}; "
            "pass trusted_types=[...] naming them (or trusted=True) if they are your own code"
        )
    _KNOWN_SAFE.update(t for t in untrusted if _is_safe_type(t, None))
    return sio.loads(data, trusted=untrusted)


def _xgb_dumps(model: Any) -> bytes:
    # save_model keeps the scikit-learn wrapper's attributes, save_raw only the booster
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.ubj")
        model.save_model(path)
        with open(path, "rb") as fh:
            return fh.read()


def _xgb_loads(data: bytes, flavor: str) -> Any:
    import importlib

    module, _, cls_name = flavor.rpartition(".")
    if not module.startswith("xgboost"):
        raise UntrustedArtifact(f"refusing to build {flavor} from an xgboost artifact")
    cls = getattr(importlib.import_module(module), cls_name)
    model = cls()
    model.load_model(bytearray(data))
    return model


class OnnxModel:
    """An ONNX graph behind a `predict(X)` that takes a DataFrame or array of floats."""

    def __init__(self, data: bytes) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, X: Any) -> Any:
        """Run the graph on `X` (cast to float32) and return its first output."""
        import numpy as np

        arr = np.asarray(X, dtype=np.float32)
        return self.session.run(None, {self.input_name: arr})[0]
