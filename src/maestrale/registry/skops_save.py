"""Writing a skops archive fast, and proving at dump time that it only names loadable types.

Two costs dominated registering a fitted scikit-learn model (200-tree HistGradientBoosting, this
2-core machine): skops writes `schema.json` with `indent=2`, which makes `json` fall back to its
pure-Python encoder (24 ms of a 59 ms dump; compact, the C encoder takes 2 ms), and skops' own
audit of the produced bytes (`get_untrusted_types`, 24 ms) ran whenever the cheap object walk below
could not prove safety — which it never could for HistGradientBoosting, whose loss and random
generator are types that skops rebuilds without declaring them.

The archive is the same skops archive (same `get_state` tree, protocol and version fields; only the
JSON whitespace differs), loaded by `skops.io.loads` and audited on load exactly as before.

>>> from sklearn.linear_model import Ridge
>>> data = dumps(Ridge())
>>> only_safe_types(Ridge(), None)
True
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from typing import Any

from maestrale.registry import trusted_types as tt


def dumps(model: object) -> bytes:
    """`skops.io.dumps(model)` with a compact `schema.json` (C JSON encoder); same archive otherwise.

    Falls back to `skops.io.dumps` if a future skops moves the internals used here.
    """
    import skops
    import skops.io as sio

    try:
        from skops.io._utils import SaveContext, get_state
    except ImportError:  # pragma: no cover - a skops without these internals: its own, slower dump
        return sio.dumps(model)
    buffer = io.BytesIO()
    # what skops.io._persist._save does, minus indent=2 (which costs 10x in the pure-Python encoder)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        context = SaveContext(zip_file=archive)
        state = get_state(model, context)
        context.clear_memo()
        state["protocol"] = context.protocol
        state["_skops_version"] = skops.__version__
        archive.writestr("schema.json", json.dumps(state, separators=(",", ":")))
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
