"""Writing a skops archive fast, and proving at dump time that it only names loadable types.

Registering a fitted scikit-learn model (200-tree HistGradientBoosting, 616 arrays, this 2-core
machine) was dominated by the dump. What it cost and what is done instead:

- skops writes `schema.json` with `indent=2`, which makes `json` fall back to its pure-Python
  encoder (24 ms of a 59 ms dump; compact, the C encoder takes 2 ms);
- skops' own audit of the produced bytes (`get_untrusted_types`, 24 ms) ran whenever the cheap
  object walk below could not prove safety — which it never could for HistGradientBoosting, whose
  loss and random generator are types that skops rebuilds without declaring them;
- each array went through `np.save`, whose header building (`dtype_to_descr` over the 13-field tree
  node dtype) cost ~20 µs an array: here the header is built once per dtype and shape and the data
  is `tobytes()`, the same `.npy` bytes (a test compares them with `np.save`'s);
- skops asks `name not in zip_file.namelist()` before writing each array (ZipFile rebuilds that
  list every time: quadratic) and `ZipFile.writestr` costs ~13 µs a member: the members are
  gathered in a dict and the stored (uncompressed) archive is written in one pass at the end.

The archive is the same skops archive (same `get_state` tree, protocol and version fields, same
`.npy` members; only the JSON whitespace and the zip's bookkeeping differ), loaded by
`skops.io.loads` and audited on load exactly as before.

>>> from sklearn.linear_model import Ridge
>>> data = dumps(Ridge())
>>> only_safe_types(Ridge(), None)
True
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import struct
import threading
import time
import zipfile
import zlib
from typing import Any

from maestrale.registry import trusted_types as tt


def dumps(model: object) -> bytes:
    """`skops.io.dumps(model)` with a compact `schema.json` (C JSON encoder); same archive otherwise.

    Falls back to `skops.io.dumps` if a future skops moves the internals used here.

    >>> dumps(Ridge())[:2]  # doctest: +SKIP
    b'PK'
    """
    import skops
    import skops.io as sio

    try:
        from skops.io._utils import SaveContext, get_state
    except ImportError:  # pragma: no cover - a skops without these internals: its own, slower dump
        return sio.dumps(model)
    _install_array_state()
    members = _Members()
    # what skops.io._persist._save does, minus indent=2 (which costs 10x in the pure-Python encoder)
    context = SaveContext(zip_file=members)  # skops only calls its namelist() and writestr()
    state = get_state(model, context)
    context.clear_memo()
    state["protocol"] = context.protocol
    state["_skops_version"] = skops.__version__
    members.writestr("schema.json", json.dumps(state, separators=(",", ":")).encode())
    return stored_zip(list(members.files.items()))


class _Members:
    """Stands in for skops' `ZipFile` while the state is gathered: members kept in order by name.

    skops only calls `namelist()` (to ask whether an array is already written) and `writestr()`.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.headers: dict[tuple[Any, ...], bytes] = {}  # .npy headers by (dtype, shape, order)

    def namelist(self) -> dict[str, bytes]:
        return self.files  # what skops asks is `name in namelist()`: a dict answers in O(1)

    def writestr(self, name: str, data: Any) -> None:
        self.files[name] = bytes(data)


_install_lock = threading.Lock()
_installed: list[bool] = []


def _install_array_state() -> None:
    """Register, once, skops' state function for `np.ndarray` wrapped with the fast path below.

    The wrapper acts only inside `dumps` (when skops' zip file is a `_Members`) and only for plain
    arrays of fixed-size dtypes; every other call, e.g. a caller's own `skops.io.dumps`, goes to
    skops' function unchanged.
    """
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        import numpy as np
        from skops.io._utils import _get_state, get_module

        skops_state = _get_state.dispatch(np.ndarray)
        module = get_module(np.ndarray)

        def array_state(obj: Any, save_context: Any) -> dict[str, Any]:
            members = save_context.zip_file
            data = None
            if type(members) is _Members and type(obj) is np.ndarray:
                data = npy_bytes(obj, members.headers)
            if data is None:
                return skops_state(obj, save_context)
            # the same state and member name as skops' ndarray_get_state
            name = f"{save_context.memoize(obj)}.npy"
            members.files.setdefault(name, data)
            return {
                "__class__": "ndarray",
                "__module__": module,
                "__loader__": "NdArrayNode",
                "type": "numpy",
                "file": name,
            }

        _get_state.register(np.ndarray)(array_state)
        _installed.append(True)


def npy_bytes(array: Any, headers: dict[tuple[Any, ...], bytes]) -> bytes | None:
    """The bytes `np.save(f, array, allow_pickle=False)` writes, or None when that would not be plain.

    `headers` caches the header by dtype, shape and order (a tree model repeats them).

    >>> import numpy as np
    >>> buf = io.BytesIO(); np.save(buf, np.arange(3.0), allow_pickle=False)
    >>> npy_bytes(np.arange(3.0), {}) == buf.getvalue()
    True
    """
    write_header = _numpy_header_writer()
    dtype = array.dtype
    # object or user-defined dtypes: np.save pickles or refuses; skops' own path decides
    if write_header is None or dtype.hasobject or not getattr(type(dtype), "_legacy", True):
        return None
    # np.save's rule (header_data_from_array_1_0): Fortran order only when not also C-contiguous
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    key = (dtype, array.shape, fortran)  # equal dtypes have equal descr (metadata is dropped)
    header = headers.get(key)
    if header is None:
        import numpy as np

        buffer = io.BytesIO()
        descr = np.lib.format.dtype_to_descr(dtype)
        write_header(buffer, {"shape": array.shape, "fortran_order": fortran, "descr": descr}, None)
        header = headers[key] = buffer.getvalue()
    return header + array.tobytes(order="F" if fortran else "C")


@functools.cache
def _numpy_header_writer() -> Any:
    """numpy's own header writer (the one `np.save` calls), or None if this numpy has moved it."""
    for module in ("numpy.lib._format_impl", "numpy.lib.format"):
        try:
            return importlib.import_module(module)._write_array_header
        except (ImportError, AttributeError):
            continue
    return None  # pragma: no cover - then skops' np.save path runs


_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir
_END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"


def stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip archive of `members`, stored (not compressed), as `zipfile` writes one without ZIP64.

    One pass of `struct.pack` and `zlib.crc32` per member; an archive that needs ZIP64 (over
    65,535 members or 2 GiB) is written by `zipfile` itself.

    >>> zipfile.ZipFile(io.BytesIO(stored_zip([("a.txt", b"hi")]))).read("a.txt")
    b'hi'
    """
    total = sum(len(data) + 30 + 46 + 2 * len(name) for name, data in members)
    if len(members) >= zipfile.ZIP_FILECOUNT_LIMIT or total >= zipfile.ZIP64_LIMIT:
        return _zipfile_archive(members)
    year, month, day, hour, minute, second = time.localtime()[:6]
    dos_date = (max(year, 1980) - 1980) << 9 | month << 5 | day
    dos_time = hour << 11 | minute << 5 | second // 2
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in members:
        try:
            raw, flags = name.encode("ascii"), 0
        except UnicodeEncodeError:
            raw, flags = name.encode("utf-8"), 0x800  # zipfile's "names are UTF-8" flag
        crc, size = zlib.crc32(data), len(data)
        common = (flags, zipfile.ZIP_STORED, dos_time, dos_date, crc, size, size, len(raw))
        local += (_LOCAL.pack(_LOCAL_SIG, 20, 0, *common, 0), raw, data)
        # made by version 2.0 on Unix, rw------- like ZipFile.writestr
        central += (
            _CENTRAL.pack(_CENTRAL_SIG, 20, 3, 20, 0, *common, 0, 0, 0, 0, 0o600 << 16, offset),
            raw,
        )
        offset += _LOCAL.size + len(raw) + size
    directory = b"".join(central)
    end = _END.pack(_END_SIG, 0, 0, len(members), len(members), len(directory), offset, 0)
    return b"".join(local) + directory + end


def _zipfile_archive(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@functools.cache
def _implicit_types() -> frozenset[str]:
    """Types skops' own nodes rebuild, checked against skops' lists, without declaring them.

    skops' LossNode accepts only its `ALLOWED_LOSSES` (the Cython losses of `sklearn._loss`, SGD's
    losses), so an archive holding one is loadable although the walk sees a type not in any list.
    """
    try:
        from skops.io._sklearn import ALLOWED_LOSSES
    except ImportError:  # pragma: no cover - then the walk fails and skops' audit runs instead
        return frozenset()
    return frozenset(f"{c.__module__}.{c.__name__}" for c in ALLOWED_LOSSES)


def only_safe_types(obj: object, extra: list[str] | None, limit: int = 200_000) -> bool:
    """True if every object reachable from `obj` is of an exactly trusted type (`tt.is_trusted`).

    A cheap walk over attributes and containers; when it cannot prove safety (a foreign type, a
    lambda, a very large graph) the caller falls back to skops' own, slower audit.
    """
    import numpy as np

    allowed = tt.caller_types(extra)
    implicit = _implicit_types()
    verdicts: dict[str, bool] = {}
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
        name = _judged_name(item)
        verdict = verdicts.get(name)
        if verdict is None:  # a 200-tree model repeats a few names hundreds of times
            verdict = verdicts[name] = (name in implicit and not tt.is_denied(name)) or tt.is_trusted(
                name, allowed
            )
        if not verdict:
            return False
        state = getattr(item, "__dict__", None)
        if state is not None:
            stack.extend(state.values())
        if isinstance(item, functools.partial):  # its function is audited like any other
            stack.extend((item.func, item.args, item.keywords))
    return True


def _judged_name(item: Any) -> str:
    """The exact name that decides whether `item` (not a container) may be rebuilt."""
    import numpy as np

    cls = type(item)
    if cls.__name__ in ("function", "builtin_function_or_method", "ufunc", "method"):
        return f"{getattr(item, '__module__', '') or ''}.{getattr(item, '__qualname__', '')}"
    if cls is np.random.Generator:
        # skops stores the bit generator by its public name and audits `numpy.random.<name>` on load
        return f"numpy.random.{type(item.bit_generator).__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"
