"""Which code a training spec may name (`module:Name`), checked before anything is imported or called.

A spec is data, and it may come from anyone holding a write token. `estimator: os:system` with
`params: {command: …}` must therefore never reach `importlib`: a reference is first checked for its
form (a dotted module, a colon, one public name), then for its module, which must sit under a prefix
Maestrale trusts (scikit-learn, LightGBM, XGBoost for estimators) or one the admin lists in
`MAESTRALE_ESTIMATOR_MODULES`. Only then is the module imported.

>>> split_ref("sklearn.linear_model:Ridge", "estimator", "e.g. ridge")
('sklearn.linear_model', 'Ridge')
>>> module_allowed("sklearn.linear_model", ("sklearn.",)), module_allowed("os", ("sklearn.",))
(True, False)

The admin's prefixes come from the settings of the process that handles the request (a worker or the
API server enters `trusted_modules(settings.estimator_modules)`), else from the environment.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from maestrale.errors import ConfigError, InvalidInput

ENV = "MAESTRALE_ESTIMATOR_MODULES"
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_RE = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*$")
_PREFIX_RE = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*\.?$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ACTIVE: ContextVar[tuple[str, ...] | None] = ContextVar("maestrale_estimator_modules", default=None)
# an unknown plugin name re-reads the installed distributions, at most this often (a request must
# not be able to make the server rescan site-packages on every call)
_RESCAN_S = 10.0


def split_ref(ref: str, field: str, how: str) -> tuple[str, str]:
    """`(module, name)` of `module:Name`; ValueError saying what is wrong with the form and `how` to fix it.

    The name is one public attribute: no dotted chains (`os:path.join`), no `_private` or `__dunder__`.
    """
    module, _, name = ref.partition(":")
    if not _MODULE_RE.match(module) or any(p.startswith("__") for p in module.split(".")):
        raise ValueError(f"{field} {ref!r}: {module!r} is not a module name; {how}")
    if "." in name:
        raise ValueError(
            f"{field} {ref!r} names an attribute chain ({name!r}): name one class or function of the "
            f"module itself; {how}"
        )
    if not _NAME_RE.match(name):
        raise ValueError(f"{field} {ref!r}: {name!r} is not a public name (letters, digits, _); {how}")
    return module, name


def module_allowed(module: str, prefixes: Iterable[str]) -> bool:
    """True when `module` is under one of `prefixes`, on a dot boundary.

    `sklearn.` admits the submodules of sklearn; `acme_models` admits `acme_models` and its submodules,
    never `acme_models_extra`.
    """
    for prefix in prefixes:
        if prefix.endswith("."):
            if module.startswith(prefix):
                return True
        elif module == prefix or module.startswith(prefix + "."):
            return True
    return False


def clean_prefixes(values: Iterable[str], setting: str = ENV) -> tuple[str, ...]:
    """The admin's module prefixes, checked: ConfigError names a malformed entry and the setting."""
    out = []
    for value in values:
        prefix = value.strip()
        if not _PREFIX_RE.match(prefix):
            raise ConfigError(
                f"{setting}: {prefix!r} is not a module prefix; list dotted module names separated by "
                "commas, e.g. acme_models,acme.forecasting"
            )
        out.append(prefix)
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _from_env(raw: str) -> tuple[str, ...]:
    from maestrale.config import Settings

    return clean_prefixes(Settings._comma_list(raw) or ())


def admin_modules() -> tuple[str, ...]:
    """The module prefixes the admin trusts: those of the active settings, else `MAESTRALE_ESTIMATOR_MODULES`.

    >>> with trusted_modules(["acme_models"]):
    ...     admin_modules()
    ('acme_models',)
    """
    active = _ACTIVE.get()
    return active if active is not None else _from_env(os.environ.get(ENV, ""))


@contextmanager
def trusted_modules(prefixes: Iterable[str]) -> Iterator[None]:
    """Use `prefixes` (a process's `Settings.estimator_modules`) as the admin's modules in this context."""
    token = _ACTIVE.set(clean_prefixes(prefixes))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def import_member(ref: str, module: str, name: str, field: str) -> Any:
    """Import `module` (already checked against its prefixes) and return its public member `name`."""
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = {"lightgbm": "maestrale[lightgbm]", "xgboost": "maestrale[xgboost]"}.get(top, top)
        raise InvalidInput(
            f"{field} {ref!r}: cannot import module {module!r} ({exc}); install it (pip install '{extra}')"
        ) from None
    if not hasattr(obj, name):
        raise InvalidInput(f"{field} {ref!r}: module {module!r} has no {name!r}")
    return getattr(obj, name)


def defined_under(obj: Any, prefixes: Iterable[str]) -> bool:
    """True when `obj` was defined in a module under `prefixes` (not merely imported into one)."""
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and module_allowed(module, prefixes)


def entry_points_of(group: str) -> dict[str, Any]:
    """Installed entry points of `group`, by name (read from the installed distributions' metadata)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


_last_rescan: dict[int, float] = {}


def installed(lookup: functools._lru_cache_wrapper[dict[str, Any]], name: str) -> bool:
    """True when the cached `lookup()` (entry points by name) has `name`, after a rescan if it is new.

    A plugin installed since the last look is found; the rescan happens at most every few seconds,
    so specs naming unknown plugins cannot make a server re-read site-packages on every request.
    """
    if name in lookup():
        return True
    now = time.monotonic()
    if now - _last_rescan.get(id(lookup), -_RESCAN_S) >= _RESCAN_S:
        _last_rescan[id(lookup)] = now
        lookup.cache_clear()
    return name in lookup()


__all__ = [
    "ENV",
    "admin_modules",
    "clean_prefixes",
    "defined_under",
    "entry_points_of",
    "import_member",
    "installed",
    "module_allowed",
    "split_ref",
    "trusted_modules",
]
