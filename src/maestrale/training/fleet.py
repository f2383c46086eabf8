"""Fleet specs: one template, one model per member, with `{variable}` templates in the strings.

```yaml
fleet: {site: [p50, p51]}              # a matrix: every combination of the lists
# or: fleet: [{site: p50, capacity: 3.4}, {site: p51, capacity: 5.0}]
name: pv-{site}
data: {uri: "data/{site}.csv"}
```

In the list form a member key that is also a spec field (`capacity`, `features`, `estimator`, …)
sets that field for the member; every scalar key is also a template variable and a tag.

>>> from maestrale.training.spec import load_spec
>>> spec = load_spec("fleet: {site: [a, b]}\\nname: pv-{site}\\ndata: {uri: '{site}.csv'}\\n"
...                  "target: y\\nfeatures: [x]\\nestimator: ridge")
>>> [m.name for m in expand_fleet(spec)]
['pv-a', 'pv-b']
"""

from __future__ import annotations

import itertools
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestrale.training.spec import TrainingSpec

MAX_MEMBERS = 1000
_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|sas|credential|connection_string", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
_SAS_SIG = re.compile(r"([?&]sig=)[^&]+", re.I)
# Fields a member cannot override: the name comes from the template, the fleet is the template's.
_NOT_OVERRIDABLE = {"name", "fleet"}


def fleet_members(fleet: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """`(variables, overrides)` per member, in order; raises ValueError saying how to fix the fleet.

    >>> fleet_members({"site": ["a", "b"], "kind": "pv"})[1]
    ({'site': 'b', 'kind': 'pv'}, {})
    """
    from maestrale.training.spec import TrainingSpec

    fields = set(TrainingSpec.model_fields) - _NOT_OVERRIDABLE
    out: list[tuple[dict[str, Any], dict[str, Any]]]
    if isinstance(fleet, dict):
        if not fleet:
            raise ValueError("fleet is empty: write e.g. `fleet: {site: [p50, p51]}`")
        keys = list(fleet)
        lists = [v if isinstance(v, list) else [v] for v in fleet.values()]
        if any(not values for values in lists):
            raise ValueError("every fleet variable needs at least one value, e.g. `site: [p50]`")
        size = math.prod(len(values) for values in lists)  # before building: 60^4 combos are 1 GB
        if size > MAX_MEMBERS:
            raise ValueError(f"fleet has {size} members; at most {MAX_MEMBERS} per spec")
        out = [(dict(zip(keys, combo, strict=True)), {}) for combo in itertools.product(*lists)]
    elif isinstance(fleet, list):
        if not fleet or not all(isinstance(m, dict) and m for m in fleet):
            raise ValueError("a fleet list holds one mapping per member: `fleet: [{site: p50}, {site: p51}]`")
        out = [
            (
                {k: v for k, v in m.items() if not isinstance(v, dict | list)},
                {k: v for k, v in m.items() if k in fields},
            )
            for m in fleet
        ]
        bad = sorted({k for m in fleet for k in m if k in _NOT_OVERRIDABLE})
        if bad:
            raise ValueError(
                f"a fleet member cannot set {bad}: template the name instead (name: pv-{{site}})"
            )
    else:
        raise ValueError("fleet is a mapping of lists or a list of mappings: `fleet: {site: [p50, p51]}`")
    for variables, _ in out:
        for key in variables:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(key)):
                raise ValueError(f"fleet variable {key!r} is not an identifier: use letters, digits and _")
    return out


def render(value: Any, variables: dict[str, Any]) -> Any:
    """Fill `{var}` placeholders in every string; a string that is only `{var}` takes the raw value.

    >>> render({"name": "pv-{site}", "capacity": "{cap}"}, {"site": "p50", "cap": 3.4})
    {'name': 'pv-p50', 'capacity': 3.4}
    """
    if isinstance(value, str):
        whole = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        # only known variables are replaced: other braces (JSON in SQL, regexes) stay as written
        return re.sub(
            r"\{([A-Za-z_][A-Za-z0-9_]*)\}",
            lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0),
            value,
        )
    if isinstance(value, dict):
        return {k: render(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, variables) for v in value]
    return value


def _label(variables: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in variables.items())


def expand_raw(spec: TrainingSpec, raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """`(label, member as plain data)` for each fleet member of a template given as plain data."""
    template = {k: v for k, v in raw.items() if k != "fleet"}
    out = []
    for variables, overrides in fleet_members(spec.fleet):
        member = render(template, variables)
        member.update(overrides)
        tags = dict(member.get("tags") or {})
        for k, v in variables.items():
            tags.setdefault(k, str(v).lower() if isinstance(v, bool) else str(v))
        tags.setdefault("fleet", str(raw.get("name", "")))
        member["tags"] = tags
        out.append((_label(variables), member))
    return out


def expand_fleet(spec: TrainingSpec) -> list[TrainingSpec]:
    """One spec per fleet member (the spec itself when it has no fleet), each fully validated.

    >>> [m.tags["site"] for m in expand_fleet(fleet_spec)]  # doctest: +SKIP
    ['p50', 'p51']
    """
    from maestrale.training.spec import TrainingSpec

    if spec.fleet is None:
        return [spec]
    raw = spec.model_dump(mode="json", exclude_none=True)
    return [TrainingSpec.model_validate(member) for _, member in expand_raw(spec, raw)]


def mask_secrets(value: Any, key: str = "") -> Any:
    """Replace credentials (URL passwords, secret-looking option values, SAS signatures) by `***`.

    `${ENV_VAR}` references are kept: they are what makes a recorded spec reproducible.

    >>> mask_secrets({"url": "postgresql://pv:s3cret@db/pv", "storage_options": {"account_key": "abc"}})
    {'url': 'postgresql://pv:***@db/pv', 'storage_options': {'account_key': '***'}}
    """
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str) and not value.startswith("${"):
        if _SECRET_KEY.search(key):
            return "***"
        masked = _URL_PASSWORD.sub(lambda m: m.group(0) if "${" in m.group(2) else f"{m[1]}***{m[3]}", value)
        return _SAS_SIG.sub(r"\1***", masked)
    return value
