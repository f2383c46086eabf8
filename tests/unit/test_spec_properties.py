"""Properties: any text or nested data parsed as a spec or a policy fails only with the documented errors.

`parse_spec` / `spec_from_data` raise `SpecError` (an `InvalidInput`, HTTP 400) and nothing else;
`parse_policy` / `load_policy(dict)` raise `PolicyError`; none of them opens a file (checked with a
CPython audit hook on `open`: only the installed packages' own files, such as entry-point metadata,
may be read, and maestrale's modules imported). Bounded and derandomised, so the run is short and the
same on every machine.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maestrale
from maestrale.monitoring.policy import (
    Condition,
    Policy,
    PolicyError,
    Promotion,
    Retrain,
    load_policy,
    parse_policy,
)
from maestrale.training._yamlmap import ALLOWED
from maestrale.training.spec import SpecError
from maestrale.training.specio import parse_spec, spec_from_data

PROPERTY = settings(
    max_examples=150, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
# code may be imported lazily (Python's and the packages' own files, maestrale's modules): no other file
_INSTALLED = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(maestrale.__file__).parent)})
_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], str | bytes):
        _opened.append(args[0].decode() if isinstance(args[0], bytes) else args[0])


sys.addaudithook(_audit)  # cannot be removed: it records only while `no_files_opened` is active


@contextmanager
def no_files_opened() -> Iterator[None]:
    """Fail if the block opens a file outside the Python installation (its packages and metadata)."""
    global _opened
    _opened = []
    try:
        yield
    finally:
        opened, _opened = _opened, None
    foreign = [path for path in opened if not path.startswith(_INSTALLED)]
    assert not foreign, f"opened {foreign}"


def only(call: Callable[[], Any], allowed: type[Exception]) -> None:
    """`call()` returns or raises `allowed`, and reads no file."""
    with no_files_opened(), suppress(allowed):
        call()


# every field name of the spec and policy models, so generated mappings reach deep validators
SPEC_KEYS = sorted({field for fields in ALLOWED.values() for field in fields} | {"<<"})
POLICY_KEYS = sorted({f for m in (Policy, Condition, Retrain, Promotion) for f in m.model_fields})
TRICKY = (  # noqa: SIM905 (a word list reads better than 22 quoted lines)
    "2011-08-01 2011-99-99 24h 0D 1e400D parsecs ridge hgb os:system sklearn.utils:Bunch /etc/passwd "
    "${HOME} dvc://[::1 {site} pv-{site} nrel_system50 pv_features nmae psi 99999999999D -1 1e309"
).split()
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(TRICKY),
)  # fmt: skip


def nested(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(keys), inner, max_size=5),
        max_leaves=25,
    )


GOOD_SPEC = {"name": "pv", "data": {"dataset": "nrel_system50"}, "target": "power_kw",
             "features": ["ghi"], "estimator": "ridge"}  # fmt: skip
GOOD_POLICY = {"name": "p", "conditions": [{"name": "a", "metric": "nmae", "above": 0.1}]}
PATHS = st.sampled_from(["/etc/hostname.yaml", "../../x.yaml", "examples/specs/pv-nrel-50.yaml",
                         "~/.ssh/id_rsa.yml", "/proc/self/environ.yaml", "tests/conftest.py"])  # fmt: skip
YAMLISH = st.text(alphabet=string.printable + "&*!|>-[]{}:#%@`'\"", max_size=300)


def mutated(good: dict[str, Any], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """`good` with a few keys replaced by (or added as) arbitrary nested values."""
    return st.dictionaries(st.sampled_from(keys), nested(keys), max_size=3).map(lambda d: {**good, **d})


def dumped(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@PROPERTY
@given(st.one_of(st.text(max_size=300), YAMLISH, PATHS))
def test_any_text_is_a_spec_or_a_spec_error(text: str):
    only(lambda: parse_spec(text), SpecError)


@PROPERTY
@given(st.one_of(nested(SPEC_KEYS), mutated(GOOD_SPEC, SPEC_KEYS)))
def test_any_data_is_a_spec_or_a_spec_error(data: Any):
    only(lambda: spec_from_data(data), SpecError)
    only(lambda: parse_spec(dumped(data)), SpecError)


@PROPERTY
@given(st.one_of(st.text(max_size=300), YAMLISH, PATHS))
def test_any_text_is_a_policy_or_a_policy_error(text: str):
    only(lambda: parse_policy(text), PolicyError)


@PROPERTY
@given(
    st.one_of(
        st.dictionaries(st.sampled_from(POLICY_KEYS), nested(POLICY_KEYS)), mutated(GOOD_POLICY, POLICY_KEYS)
    )
)
def test_any_data_is_a_policy_or_a_policy_error(data: dict[str, Any]):
    only(lambda: load_policy(data), PolicyError)
    only(lambda: parse_policy(dumped(data)), PolicyError)


def test_the_audit_hook_sees_a_file_read(tmp_path):
    """The property above would be vacuous if the hook missed reads: it must catch a plain open."""
    (tmp_path / "x.yaml").write_text("name: x\n")
    try:
        with no_files_opened():
            (tmp_path / "x.yaml").read_text()
    except AssertionError as exc:
        assert "x.yaml" in str(exc)
    else:
        raise AssertionError("the audit hook missed a read")
