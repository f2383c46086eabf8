"""Serialisation of models into safe formats, chosen from the object's type, and their guarded loading.

| format   | objects                                       | loads as                          |
|----------|-----------------------------------------------|-----------------------------------|
| skops    | scikit-learn estimators, Pipelines, ColumnTransformers | the same object              |
| lightgbm | `lightgbm.Booster`, `LGBMRegressor`/`LGBMClassifier` | `lightgbm.Booster` (native text) |
| xgboost  | `xgboost.Booster`, `XGBRegressor`/`XGBClassifier`    | the same class (native UBJSON)   |
| onnx     | `onnx.ModelProto`                             | `OnnxModel` (onnxruntime session) |
| pickle   | anything, only when asked with `format="pickle"` | the object, only with `trusted=True` |

Every artifact is treated as hostile until checked: skops archives may only name the exact types of
`maestrale.registry.trusted_types` (plus the caller's, never a denied one), and the node arrays of
the tree models in them are bounds-checked after loading (`sklearn_checks`); LightGBM and XGBoost
bytes are checked structurally before their native parsers run (`native_checks`); ONNX models may
not reference external data files. Only `trusted=True` skips these checks.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

from maestrale.errors import InvalidInput, UnsupportedModel, UntrustedArtifact
from maestrale.registry import trusted_types as tt

FORMATS = ("skops", "lightgbm", "xgboost", "onnx", "pickle")
SUPPORTED = (
    "scikit-learn estimators and pipelines (skops), LightGBM and XGBoost models (native formats), "
    "ONNX ModelProto; anything else only with format='pickle' (loading then needs trusted=True)"
)
#: Flavors a LightGBM artifact may declare; every one loads as `lightgbm.Booster`.
LIGHTGBM_FLAVORS = frozenset(
    {
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMModel",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRanker",
    }
)
#: The only classes an XGBoost artifact may ask to be rebuilt as (built by name, so never more).
XGBOOST_CLASSES = frozenset(
    {
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRanker",
        "xgboost.sklearn.XGBRFRegressor",
        "xgboost.sklearn.XGBRFClassifier",
    }
)
ONNX_FLAVOR = "onnx.onnx_ml_pb2.ModelProto"
# A skops archive may expand this much beyond its stored size (zip bombs); ours are stored, not
# deflated, so a legitimate archive expands by ~1x.
MAX_SKOPS_EXPANSION, MAX_SKOPS_BYTES = 100, 8 << 30


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


def _allowed_flavor(model: object, allowed: frozenset[str]) -> str:
    """The nearest class of `model` (itself or a base) that the loader may rebuild."""
    for cls in type(model).__mro__:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in allowed:
            return name
    raise UnsupportedModel(
        f"cannot store a {flavor_of(model)}: it derives from none of {', '.join(sorted(allowed))}; "
        f"supported: {SUPPORTED}"
    )


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
        booster: Any = model if type(model).__name__ == "Booster" else getattr(model, "booster_", None)
        if booster is None:
            raise InvalidInput(
                f"{type(model).__name__} is not a fitted LightGBM model: fit it before registering"
            )
        data = booster.model_to_string().encode()
        return Serialized(data, fmt, _allowed_flavor(model, LIGHTGBM_FLAVORS))
    if fmt == "xgboost":
        return Serialized(_xgb_dumps(model), fmt, _allowed_flavor(model, XGBOOST_CLASSES))
    if fmt == "onnx":
        return Serialized(model.SerializeToString(), fmt, flavor)  # type: ignore[attr-defined]
    return Serialized(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), fmt, flavor)


def deserialize(
    data: bytes,
    format: str,
    flavor: str,
    *,
    trusted: bool = False,
    trusted_types: list[str] | None = None,
    what: str | None = None,
) -> Any:
    """Rebuild a model from bytes already checked against their sha256; `what` names the version.

    Raises `UntrustedArtifact` for anything refused (unknown types, malformed trees, external
    data), with the version and the problem in the message, before any native parser runs.

    >>> deserialize(serialize(Ridge()).data, "skops", "sklearn.linear_model._ridge.Ridge")  # doctest: +SKIP
    Ridge()
    """
    what = what or f"this {flavor} artifact"
    if format == "skops":
        return _skops_loads(data, what, trusted, trusted_types)
    if format == "lightgbm":
        return _lgb_loads(data, flavor, what, trusted)
    if format == "xgboost":
        return _xgb_loads(data, flavor, what, trusted)
    if format == "onnx":
        if not trusted:
            from maestrale.registry.native_checks import check_onnx

            check_onnx(data, what)
        return _native(what, "onnxruntime", lambda: OnnxModel(data))
    if format == "pickle":
        if not trusted:
            raise UntrustedArtifact(
                f"{what} is a pickle ({flavor}), and loading a pickle can run arbitrary code: "
                "pass trusted=True only if you trust everyone who can write to this registry"
            )
        return pickle.loads(data)
    raise InvalidInput(f"unknown artifact format {format!r}; this Maestrale reads {', '.join(FORMATS)}")


def _native(what: str, library: str, build: Any) -> Any:
    """Run a native loader; its exceptions become one error naming the version."""
    try:
        return build()
    except MemoryError:
        raise UntrustedArtifact(f"{what}: {library} ran out of memory reading it; refusing it") from None
    except Exception as exc:  # every loader raises its own types; the message is what matters
        raise UntrustedArtifact(
            f"{what} could not be read by {library} ({type(exc).__name__}: {str(exc)[:300]}); "
            "the file is corrupted or was not written by it: re-register the model"
        ) from None


# -- skops -----------------------------------------------------------------------------------------
def _skops_dumps(model: object, trusted_types: list[str] | None) -> bytes:
    import skops.io as sio

    from maestrale.registry.skops_save import dumps, only_safe_types

    data = dumps(model)
    if only_safe_types(model, trusted_types):
        return data  # proven safe without re-reading the archive (skops' audit costs as much as the dump)
    # refuse now what could not be loaded safely later, while the user still has the object
    allowed = tt.caller_types(trusted_types)
    unsafe = [t for t in sio.get_untrusted_types(data=data) if not tt.is_trusted(t, allowed)]
    if unsafe:
        denied = tt.denied_in(unsafe)
        raise UnsupportedModel(
            f"{flavor_of(model)} contains types that cannot be loaded safely: {', '.join(unsafe)}. "
            + (f"{', '.join(denied)} can never be trusted by name. " if denied else "")
            + "If they are your own code, pass trusted_types=[...] to register and to load; "
            f"supported: {SUPPORTED}"
        )
    return data


def check_skops_archive(data: bytes, what: str) -> zipfile.ZipFile:
    """Open a skops archive after bounding what it expands to (a zip bomb is refused, not read)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UntrustedArtifact(f"{what} is not a readable skops archive ({exc})") from None
    if expanded > min(MAX_SKOPS_BYTES, max(len(data) * MAX_SKOPS_EXPANSION, 256 << 20)):
        raise UntrustedArtifact(
            f"{what} expands from {len(data)} to {expanded} bytes; refusing a likely zip bomb"
        )
    if "schema.json" not in archive.namelist():
        raise UntrustedArtifact(f"{what} is a zip file without schema.json, not a skops archive")
    return archive


def _skops_loads(data: bytes, what: str, trusted: bool, trusted_types: list[str] | None) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from maestrale.registry.sklearn_checks import check_model

    archive = check_skops_archive(data, what)
    if trusted:  # full trust, said explicitly: no allowlist, no deny list, no structural checks
        return sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    # one pass: skops' defaults plus an exact, static list; nothing learnt at run time widens it
    allowed = _named_in(archive, tt.default_trusted_types()) + sorted(tt.caller_types(trusted_types))
    try:
        model = sio.loads(data, trusted=allowed)
    except UntrustedTypesFoundException:
        raise UntrustedArtifact(untrusted_message(data, what, trusted_types)) from None
    except Exception as exc:  # a malformed schema fails in many ways inside skops
        raise UntrustedArtifact(
            f"{what} is not a valid skops archive ({type(exc).__name__}: {str(exc)[:300]})"
        ) from None
    check_model(model, what)
    return model


def _named_in(archive: zipfile.ZipFile, names: frozenset[str]) -> list[str]:
    """The allowlisted names whose module and class the schema mentions (same verdict, less work).

    skops re-copies the trusted list into every node it reads, so passing only the names that can
    occur keeps a load as fast as with skops' defaults alone.
    """
    schema = archive.read("schema.json")
    return sorted(
        n
        for n in names
        if b'"%s"' % n.rpartition(".")[2].encode() in schema and n.rpartition(".")[0].encode() in schema
    )


def untrusted_message(data: bytes, what: str, trusted_types: list[str] | None) -> str:
    """Why a skops archive was refused: the types to review, and those no list can allow."""
    import skops.io as sio

    allowed = tt.caller_types(trusted_types)
    unsafe = [t for t in sio.get_untrusted_types(data=data) if not tt.is_trusted(t, allowed)]
    denied = tt.denied_in(unsafe)
    message = f"{what} contains types Maestrale does not trust: {', '.join(unsafe)}"
    if denied:
        return message + f"; {', '.join(denied)} can run code or touch files and are never trusted by name"
    return message + "; pass trusted_types=[...] naming them (or trusted=True) if they are your own code"


# -- LightGBM, XGBoost, ONNX -----------------------------------------------------------------------
def _lgb_loads(data: bytes, flavor: str, what: str, trusted: bool) -> Any:
    from maestrale.registry.native_checks import check_lightgbm

    if flavor not in LIGHTGBM_FLAVORS:
        raise UntrustedArtifact(f"{what}: refusing a LightGBM artifact declared as {flavor}")
    if not trusted:
        check_lightgbm(data, what)
    import lightgbm

    return _native(what, "lightgbm", lambda: lightgbm.Booster(model_str=data.decode()))


def _xgb_dumps(model: Any) -> bytes:
    # save_model keeps the scikit-learn wrapper's attributes, save_raw only the booster
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.ubj")
        model.save_model(path)
        with open(path, "rb") as fh:
            return fh.read()


def _xgb_loads(data: bytes, flavor: str, what: str, trusted: bool) -> Any:
    import importlib

    from maestrale.registry.native_checks import check_xgboost

    if flavor not in XGBOOST_CLASSES:
        raise UntrustedArtifact(
            f"{what}: refusing to build {flavor} from an xgboost artifact; "
            f"allowed: {', '.join(sorted(XGBOOST_CLASSES))}"
        )
    if not trusted:
        check_xgboost(data, what)
    module, _, cls_name = flavor.rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)

    def build() -> Any:
        model = cls()
        model.load_model(bytearray(data))
        return model

    return _native(what, "xgboost", build)


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
