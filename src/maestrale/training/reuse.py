"""Skip a training that would repeat one: same spec, same data, same code as a registered version.

Every version the trainer registers carries a tag `spec_sha256` (the sha256 of the spec as
recorded) next to the fields the registry always records: `data_fingerprint` (the sha256 of the
data read), `code_version` (the git commit) and `package_versions`. `train(..., reuse=True)` reads
the data, then looks for a ready version of the same model whose four agree; if there is one, it
returns that version instead of fitting a copy of it. `maestrale train` asks for this unless
`--force`; the monitor's retrainings do not (their data window has moved anyway).

A work tree with uncommitted changes (`code_version` ending in `+dirty`) never matches: the commit
does not say which code ran, so the training runs and the reason is given.

>>> spec_sha256(load_spec("examples/specs/pv-nrel-50.yaml"))[:12]  # doctest: +SKIP
'5c0e0d5b8a51'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maestrale.registry.client import Registry
    from maestrale.registry.types import ModelVersion
    from maestrale.training.spec import TrainingSpec

#: The version tag holding `spec_sha256(spec)`; searched by `find_unchanged`.
SPEC_TAG = "spec_sha256"
#: How many versions with the same spec are looked at (newest first) for the same data and code.
CANDIDATES = 20


def spec_sha256(spec: TrainingSpec) -> str:
    """sha256 of the spec as recorded on the version (canonical JSON, secrets masked)."""
    text = json.dumps(spec.to_record(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of `find_unchanged`: the version to reuse, or None and why the training must run
    (`reason` None: no version was trained from this spec, so there is nothing to say)."""

    version: ModelVersion | None
    reason: str | None


def _package_changes(recorded: dict[str, str]) -> list[str]:
    """`pkg old → new` for each package recorded on a version whose installed version differs."""
    import platform
    from importlib import metadata

    changes = []
    for dist, old in sorted(recorded.items()):
        try:
            new: str | None = platform.python_version() if dist == "python" else metadata.version(dist)
        except metadata.PackageNotFoundError:
            new = None
        if new != old:
            changes.append(f"{dist} {old} → {new or 'not installed'}")
    return changes


def find_unchanged(registry: Registry, spec: TrainingSpec, fingerprint: str) -> Lookup:
    """The newest ready version of `spec.name` trained from this spec, data and code, if any.

    >>> find_unchanged(reg, spec, loaded.version.fingerprint).version.ref  # doctest: +SKIP
    'pv-foggia:3'
    """
    from maestrale.registry.metadata import code_version
    from maestrale.registry.search import quote

    code = code_version()
    query = f"name = {quote(spec.name)} and tags.{SPEC_TAG} = {quote(spec_sha256(spec))}"
    page = registry.search_versions(query, order_by="version desc", limit=CANDIDATES, full=True)
    if not page.items:
        return Lookup(None, None)
    if code is not None and code.endswith("+dirty"):
        why = f"the work tree has uncommitted changes ({code}): the commit does not say which code ran"
        return Lookup(None, why)
    reasons = []
    for mv in page.items:
        if mv.data_fingerprint != fingerprint:
            reasons.append(f"the data changed since {mv.ref}")
        elif mv.code_version != code:
            reasons.append(f"the code changed since {mv.ref} ({mv.code_version} → {code})")
        elif changes := _package_changes(mv.package_versions):
            reasons.append(f"packages changed since {mv.ref}: {', '.join(changes)}")
        else:
            return Lookup(mv, f"{mv.ref} was trained from the same spec, data and code")
    return Lookup(None, reasons[0])  # the newest candidate's reason is the one that matters
