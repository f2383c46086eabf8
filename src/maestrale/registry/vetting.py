"""Registration-time checks over REST: the stored bytes, not the request, say what an artifact is.

A client with a write token declares `format`, `flavor` and `size` next to an object it uploaded.
None of it is believed: `vet_artifact` reads the object (bounded), sniffs its format from the bytes,
derives the flavor from a safe parse, compares both with the declaration, and runs the same checks a
load would (the skops type allowlist and tree bounds, the LightGBM/XGBoost structure, ONNX external
data). Any mismatch or refusal is an `InvalidInput` (400) naming what was declared and what was found.

Types outside the allowlist in a skops archive (the caller's own classes) are accepted only when the
request names them in `X-Maestrale-Trusted-Types` and none is on the deny list; the server then
audits types only and never imports or builds them. Loading still needs the same `trusted_types`.

>>> vet_artifact(store, body.artifact, "pv-forecast", max_bytes=512 << 20)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickletools
from typing import Any

from maestrale.errors import InvalidInput, MaestraleError, PayloadTooLarge, UntrustedArtifact
from maestrale.registry import formats
from maestrale.registry import trusted_types as tt
from maestrale.registry.types import ArtifactInfo

TRUST_HEADER = "X-Maestrale-Trusted-Types"
_LIBRARY = {"lightgbm": "lightgbm", "xgboost": "xgboost", "onnx": "onnxruntime"}
_DESCRIBE = {
    "skops": "a skops archive",
    "lightgbm": "LightGBM model text",
    "xgboost": "an XGBoost JSON/UBJSON model",
    "onnx": "an ONNX model",
    "pickle": "a pickle",
    "zip": "a zip file without schema.json",
    "unknown": "in no format Maestrale reads",
}


def vet_artifact(
    store: Any, info: ArtifactInfo, name: str, *, max_bytes: int, trusted_types: list[str] | None = None
) -> None:
    """Refuse (400) an uploaded object whose bytes contradict `info` or fail the load-time checks."""
    what = f"the artifact of {name} (object {info.sha256[:12]}…)"
    size = store.size(info.key)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{what} is {size} bytes, over the {max_bytes >> 20} MiB limit (MAESTRALE_MAX_UPLOAD_MB)"
        )
    data = store.get_bytes(info.key, info.sha256, what)
    if info.size != len(data):
        raise InvalidInput(f"{what}: declared size {info.size}, but the stored object is {len(data)} bytes")
    if info.format == "onnx" and importlib.util.find_spec("onnx") is None:
        raise InvalidInput(f"{what}: this server cannot check ONNX models; install maestrale[onnx] on it")
    found = sniff(data)
    if found != info.format:
        raise InvalidInput(
            f"{what}: declared format {info.format!r}, but the bytes are {_DESCRIBE[found]}; "
            "register it with the format serialize() chose"
        )
    try:
        _check_flavor(data, info, what)
        _check_content(data, info, what, trusted_types)
    except UntrustedArtifact as exc:  # at registration a refusal is a bad request, not a 403
        raise InvalidInput(exc.message) from None


def sniff(data: bytes) -> str:
    """The format the bytes are in, judged from the bytes alone (never from a declaration).

    >>> sniff(b"tree\\nversion=v4\\n")
    'lightgbm'
    """
    if data[:4] == b"PK\x03\x04":
        return "skops" if b"schema.json" in _zip_names(data) else "zip"
    if data.startswith(b"tree\n"):
        return "lightgbm"
    if data[:2] == b'{"' or (data[:1] == b"{" and data[1:2].isalpha()):
        return "xgboost"  # the test XGBoost itself applies to tell JSON and UBJSON apart
    if data[:1] == b"\x80" and _is_pickle(data):
        return "pickle"
    if _is_onnx(data):
        return "onnx"
    return "unknown"


def _zip_names(data: bytes) -> bytes:
    import zipfile

    try:
        return "\n".join(zipfile.ZipFile(io.BytesIO(data)).namelist()).encode()
    except (zipfile.BadZipFile, ValueError, OSError):
        return b""


def _is_pickle(data: bytes) -> bool:
    """Pickle opcodes from the first byte to a final STOP, parsed without executing any of them."""
    try:
        last = None
        for opcode, _arg, pos in pickletools.genops(data):
            last = (opcode.name, pos)
    except Exception:  # genops raises ValueError, KeyError, struct errors on garbage
        return False
    return last is not None and last[0] == "STOP" and last[1] == len(data) - 1


def _is_onnx(data: bytes) -> bool:
    try:
        import onnx
    except ImportError:
        return False
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError
        return False
    # protobuf parses many byte strings; a real model has an IR version, an opset and a graph
    return model.ir_version > 0 and len(model.opset_import) > 0 and len(model.graph.node) > 0


def _check_flavor(data: bytes, info: ArtifactInfo, what: str) -> None:
    allowed = {"lightgbm": formats.LIGHTGBM_FLAVORS, "xgboost": formats.XGBOOST_CLASSES}.get(info.format)
    if allowed is not None and info.flavor not in allowed:
        raise InvalidInput(
            f"{what}: declared flavor {info.flavor!r} is not one {info.format} artifacts load as; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    derived = None
    if info.format == "onnx":
        derived = formats.ONNX_FLAVOR
    elif info.format == "skops":
        derived = _skops_flavor(data, what)
    if derived is not None and derived != info.flavor:
        raise InvalidInput(f"{what}: declared flavor {info.flavor!r}, but the bytes hold a {derived}")


def _skops_flavor(data: bytes, what: str) -> str:
    """`module.Class` of the archive's top-level object, read from schema.json (nothing is built)."""
    archive = formats.check_skops_archive(data, what)
    try:
        schema = json.loads(archive.read("schema.json"))
        return f"{schema['__module__']}.{schema['__class__']}"
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"{what}: schema.json is not a skops schema ({type(exc).__name__})") from None


def _check_content(data: bytes, info: ArtifactInfo, what: str, trusted_types: list[str] | None) -> None:
    if info.format == "pickle":
        return  # stored as declared; loading it still needs trusted=True
    if info.format == "skops":
        _vet_skops(data, what, trusted_types)
        return
    from maestrale.registry import native_checks as nc

    check = {"lightgbm": nc.check_lightgbm, "xgboost": nc.check_xgboost, "onnx": nc.check_onnx}[info.format]
    check(data, what)
    # then a real load where the server has the library (a server without it still checked the structure)
    if importlib.util.find_spec(_LIBRARY[info.format]) is not None:
        formats.deserialize(data, info.format, info.flavor, what=what)


def _vet_skops(data: bytes, what: str, trusted_types: list[str] | None) -> None:
    import skops.io as sio

    denied = tt.denied_in(trusted_types or ())
    if denied:
        raise InvalidInput(
            f"{what}: {TRUST_HEADER} names {', '.join(denied)}, which are never trusted by name"
        )
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except MaestraleError:
        raise
    except Exception as exc:
        raise InvalidInput(f"{what} is not a valid skops archive ({type(exc).__name__}: {exc})") from None
    unknown = [t for t in untrusted if not tt.is_trusted(t, tt.caller_types(trusted_types))]
    if unknown:
        raise InvalidInput(
            formats.untrusted_message(data, what, trusted_types) + f" (or declare them in {TRUST_HEADER})"
        )
    if not [t for t in untrusted if t not in tt.default_trusted_types()]:
        # nothing but allowlisted types: build it here, so malformed tree arrays are refused now
        formats.deserialize(data, "skops", "", what=what)
