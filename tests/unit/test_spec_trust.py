"""Training specs are hostile until checked: code references, bounded YAML, readers that never open files.

The data-source policy is in `test_source_policy.py`; the same attacks against a real REST server and a
real worker on the bus are in `tests/integration/test_training_trust.py`.
"""

from __future__ import annotations

import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maestrale.cli.main import app as cli
from maestrale.deploy.validate import load_documents
from maestrale.errors import ConfigError, InvalidInput
from maestrale.monitoring.policy import PolicyError, load_policy, parse_policy
from maestrale.training import coderefs, estimators, features
from maestrale.training.spec import SpecError
from maestrale.training.specio import load_spec, load_spec_file, parse_spec, spec_from_data
from maestrale.yamlsafe import YamlError

GOOD = """\
name: pv-trust
data: {dataset: nrel_system50}
target: power_kw
features: [ghi, temp_air]
estimator: ridge
params: {alpha: 1.0}
"""


def with_estimator(ref: str, params: str = "{alpha: 1.0}") -> str:
    return GOOD.replace("estimator: ridge", f"estimator: {ref}").replace("{alpha: 1.0}", params)


def billion_laughs(levels: int = 6) -> str:
    """The classic alias bomb: 10 `lol`s, then each level a list of 10 aliases of the previous one.

    Six levels expand to 10^6 nodes: `yaml.safe_load` took 2.75 s and 340 MB for the spec before.
    """
    text = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]\n"
    return text


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A company module on sys.path, with a factory of its own and names it merely imported."""
    (tmp_path / "acme_trusted.py").write_text(
        textwrap.dedent(
            """\
            from os import system  # imported, not defined here: never a factory
            from sklearn.base import BaseEstimator
            from sklearn.linear_model import Ridge


            def make_ridge(alpha=1.0):
                return Ridge(alpha=alpha)


            def not_an_estimator(**params):
                return {"fit": None}


            def shout(frame):
                return frame * 2


            class MeanRegressor(BaseEstimator):
                def fit(self, X, y):
                    self.mean_ = float(sum(y) / len(y))
                    return self

                def predict(self, X):
                    return [self.mean_] * len(X)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "acme_trusted"
    sys.modules.pop("acme_trusted", None)


# -- estimators -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("os:system", "os:system is not an estimator class from scikit-learn, LightGBM or XGBoost"),
        ("builtins:exec", "builtins:exec is not an estimator class"),
        ("subprocess:Popen", "subprocess:Popen is not an estimator class"),
        ("posix:system", "posix:system is not an estimator class"),
        ("sklearn.linear_model:__class__", "'__class__' is not a public name"),
        ("sklearn.linear_model:_base", "'_base' is not a public name"),
        ("sklearn.__init__:Ridge", "is not a module name"),
        ("sklearn.linear_model:Ridge.__init__", "names an attribute chain"),
        ("sklearn:Ridge", "sklearn:Ridge is not an estimator class"),  # `sklearn.` means its submodules
        ("sklearnx.evil:Model", "is not an estimator class"),
    ],
)
def test_estimator_references_outside_the_trusted_libraries_are_refused_at_validation(ref: str, reason: str):
    with pytest.raises(SpecError) as info:
        parse_spec(with_estimator(ref))
    [issue] = info.value.issues
    assert (issue.path, issue.line) == ("estimator", 5)
    assert reason in issue.message
    with pytest.raises(InvalidInput, match="not an estimator class|not a public name|chain|module name"):
        estimators.build_estimator(ref, {})


def test_os_system_is_never_called_even_without_validation(tmp_path: Path):
    canary = tmp_path / "canary"
    with pytest.raises(InvalidInput, match="package your own as a plugin"):
        estimators.build_estimator("os:system", {"command": f"touch {canary}"})
    assert not canary.exists()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("sklearn.utils:Bunch", "sklearn.utils:Bunch is not an estimator class .*it is a class, but not a"),
        ("sklearn.utils:check_array", "is not an estimator class .*it is function"),
        ("sklearn.base:BaseEstimator", "has no fit or predict"),
        ("sklearn.linear_model._base:LinearModel", "is an abstract base class"),
        ("sklearn.datasets:fetch_openml", "is not an estimator class"),  # downloads: never a factory
    ],
)
def test_what_a_trusted_library_name_really_is_is_checked_before_it_is_called(ref: str, message: str):
    parse_spec(with_estimator(ref))  # the module is trusted: validation (no import) lets it through
    with pytest.raises(InvalidInput, match=message):
        estimators.build_estimator(ref, {})


def test_aliases_library_classes_and_their_messages_still_work():
    built = [
        type(estimators.build_estimator(ref, {})[0]).__name__
        for ref in ("hgb", "xgboost", "lightgbm:LGBMRegressor", "sklearn.linear_model:Lasso")
    ]
    assert built == ["HistGradientBoostingRegressor", "XGBRegressor", "LGBMRegressor", "Lasso"]
    with pytest.raises(ValueError, match="needs a colon before the class: write sklearn.linear_model:Ridge"):
        estimators.check_estimator_ref("sklearn.linear_model.Ridge")
    with pytest.raises(ValueError, match="unknown estimator 'catboost'"):
        estimators.check_estimator_ref("catboost")


def test_admin_modules_admit_their_classes_and_factories_but_not_what_they_import(acme, monkeypatch):
    with pytest.raises(SpecError, match="acme_trusted:MeanRegressor is not an estimator class"):
        parse_spec(with_estimator("acme_trusted:MeanRegressor"))
    monkeypatch.setenv("MAESTRALE_ESTIMATOR_MODULES", "acme_trusted")
    spec = parse_spec(with_estimator("acme_trusted:MeanRegressor", "{}"))
    assert spec.estimator == "acme_trusted:MeanRegressor"
    est, _ = estimators.build_estimator("acme_trusted:make_ridge", {"alpha": 3.0})
    assert type(est).__name__ == "Ridge" and est.alpha == 3.0
    with pytest.raises(InvalidInput, match="not an estimator class .*it is builtin_function_or_method"):
        estimators.build_estimator("acme_trusted:system", {"command": "true"})
    with pytest.raises(InvalidInput, match="built a dict without fit/predict"):
        estimators.build_estimator("acme_trusted:not_an_estimator", {})
    with pytest.raises(InvalidInput, match="has no fit or predict"):  # imported from sklearn: a class check
        estimators.build_estimator("acme_trusted:BaseEstimator", {})


def test_the_active_settings_override_the_environment(acme, monkeypatch):
    monkeypatch.setenv("MAESTRALE_ESTIMATOR_MODULES", "acme_trusted")
    # a worker whose settings list nothing
    with coderefs.trusted_modules([]), pytest.raises(InvalidInput, match="not an estimator class"):
        estimators.build_estimator("acme_trusted:make_ridge", {})
    monkeypatch.delenv("MAESTRALE_ESTIMATOR_MODULES")
    with coderefs.trusted_modules(["acme_trusted"]):
        est, _ = estimators.build_estimator("acme_trusted:MeanRegressor", {})
    assert type(est).__name__ == "MeanRegressor"
    with pytest.raises(ConfigError, match="MAESTRALE_ESTIMATOR_MODULES: 'os; rm' is not a module prefix"):
        coderefs.clean_prefixes(["os; rm"])


def test_a_prefix_matches_on_a_dot_boundary_only():
    assert coderefs.module_allowed("acme.models", ("acme",))
    assert not coderefs.module_allowed("acme_evil", ("acme",))
    assert coderefs.module_allowed("sklearn.ensemble", ("sklearn.",))
    assert not coderefs.module_allowed("sklearn", ("sklearn.",))


# -- feature sets -----------------------------------------------------------------------------------
def test_feature_set_functions_come_only_from_trusted_modules(acme, monkeypatch, tmp_path):
    canary = tmp_path / "canary"
    spec = GOOD.replace("features: [ghi, temp_air]", "feature_set: os:system")
    with pytest.raises(SpecError, match="feature_set os:system is not from a module the admin trusts"):
        parse_spec(spec)
    with pytest.raises(InvalidInput, match="not from a module the admin trusts"):
        features.resolve_feature_set("os:system")
    assert not canary.exists()
    monkeypatch.setenv("MAESTRALE_ESTIMATOR_MODULES", "acme_trusted")
    fn, required = features.resolve_feature_set("acme_trusted:shout")
    assert fn(2) == 4 and required == []
    with pytest.raises(InvalidInput, match="not a function defined in that module"):
        features.resolve_feature_set("acme_trusted:system")
    assert features.resolve_feature_set("pv_features")[1] == ["ghi", "temp_air"]


def test_feature_set_plugin_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "acme_features.py").write_text("def doubled(frame):\n    return frame * 2\n")
    info = tmp_path / "acme_features-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-features\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[maestrale.feature_sets]\nacme-doubled = acme_features:doubled\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    features.plugins.cache_clear()
    try:
        spec = parse_spec(GOOD.replace("features: [ghi, temp_air]", "feature_set: acme-doubled"))
        fn, _ = features.resolve_feature_set(spec.feature_set or "")
        assert fn(21) == 42
    finally:
        features.plugins.cache_clear()
        sys.modules.pop("acme_features", None)


# -- readers: text is text, never a path -------------------------------------------------------------
@pytest.mark.parametrize("text", ["/etc/hostname.yaml", "../../x.yaml", "examples/specs/pv-nrel-50.yaml"])
def test_parse_spec_reads_a_path_as_yaml_text(text: str):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert "a spec is a YAML mapping" in str(info.value) and "pv-nrel-50" not in str(info.value)


def test_an_empty_or_malformed_json_spec_lists_its_problems():
    with pytest.raises(SpecError) as info:
        spec_from_data({})
    assert {i.path for i in info.value.issues} == {"name", "data", "target", "estimator"}
    with pytest.raises(SpecError, match="a spec is a mapping"):
        spec_from_data(["name", "x"])
    nested: dict = {}
    for _ in range(200):
        nested = {"x": nested}
    with pytest.raises(SpecError, match="nests deeper than 64 levels"):
        spec_from_data({**spec_from_data_good(), "params": nested})


def spec_from_data_good() -> dict:
    return {"name": "pv", "data": {"dataset": "nrel_system50"}, "target": "power_kw",
            "features": ["ghi"], "estimator": "ridge"}  # fmt: skip


def test_local_readers_still_read_files(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD)
    assert load_spec(path).name == load_spec(str(path)).name == load_spec_file(path).name == "pv-trust"


# -- bounded YAML -----------------------------------------------------------------------------------
def refused_fast(call, error: type[Exception], match: str) -> None:
    """`call()` raises `error` within 0.5 s and allocates less than 5 MB on the way."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(error, match=match):
            call()
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5, f"took {elapsed:.2f} s"
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_a_billion_laughs_spec_is_refused_in_milliseconds_with_flat_memory(tmp_path: Path):
    bomb = GOOD + billion_laughs()
    assert len(bomb.encode()) < 600  # 10^6 nodes once expanded
    refused_fast(lambda: parse_spec(bomb), SpecError, "expands to more than 100,000 nodes")
    (tmp_path / "bomb.yaml").write_text(bomb)
    refused_fast(lambda: load_spec_file(tmp_path / "bomb.yaml"), SpecError, "more than 100,000 nodes")


def test_a_billion_laughs_policy_and_manifest_are_refused_fast(tmp_path: Path):
    bomb = "name: p\nconditions: [{name: a, metric: nmae, above: 1}]\n" + billion_laughs()
    refused_fast(lambda: parse_policy(bomb), PolicyError, "expands to more than 100,000 nodes")
    (tmp_path / "bomb.yaml").write_text(bomb)
    refused_fast(lambda: load_policy(tmp_path / "bomb.yaml"), PolicyError, "more than 100,000 nodes")
    refused_fast(lambda: load_documents(billion_laughs(7)), InvalidInput, "more than 2,000,000 nodes")


def test_the_cli_refuses_the_bombs(tmp_path: Path):
    (tmp_path / "spec.yaml").write_text(GOOD + billion_laughs())
    (tmp_path / "policy.yaml").write_text("name: p\n" + billion_laughs())
    started = time.perf_counter()
    out = CliRunner().invoke(cli, ["train", str(tmp_path / "spec.yaml"), "--local"])
    assert out.exit_code != 0 and "expands to more than 100,000 nodes" in out.output
    out = CliRunner().invoke(cli, ["policy", "check", str(tmp_path / "policy.yaml")])
    assert out.exit_code != 0 and "expands to more than 100,000 nodes" in out.output
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 5000 + "]" * 5000, "nests deeper than 64 levels"),
        ("a: &a [*a]\n", "alias inside its own anchor"),
        ("x: " + "y" * (300 * 1024), "over the limit of 262,144 bytes"),
        ("a: 1\n---\nb: 2\n", "several documents"),
        ("a: !!python/object/apply:os.system [id]\n", "not valid YAML"),
    ],
)
def test_other_hostile_yaml_is_refused_with_the_limit_named(text: str, message: str):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_legitimate_anchors_still_work_in_a_fleet():
    spec = parse_spec(
        textwrap.dedent(
            """\
            fleet:
              - {site: p50, params: &defaults {max_iter: 50, learning_rate: 0.1}}
              - {site: p51, params: *defaults}
              - {site: p52, params: {<<: *defaults, max_iter: 80}}
            name: pv-{site}
            data: {dataset: nrel_system50}
            target: power_kw
            feature_set: pv_features
            estimator: hgb
            """
        )
    )
    from maestrale.training.fleet import expand_fleet

    params = {m.name: m.params for m in expand_fleet(spec)}
    assert params == {
        "pv-p50": {"max_iter": 50, "learning_rate": 0.1},
        "pv-p51": {"max_iter": 50, "learning_rate": 0.1},
        "pv-p52": {"max_iter": 80, "learning_rate": 0.1},  # the own key overrides, no "given twice"
    }


def test_an_error_inside_an_aliased_value_points_at_the_line_using_the_alias():
    with pytest.raises(SpecError) as info:
        parse_spec(GOOD.replace("{alpha: 1.0}", "&p {alpha: 1.0}") + "train_window: *p\n")
    [issue] = info.value.issues
    assert (issue.path, issue.line) == ("train_window.alpha", 7) and "unknown field 'alpha'" in issue.message


def test_yaml_errors_are_invalid_input():
    assert issubclass(YamlError, InvalidInput) and issubclass(SpecError, InvalidInput)


def test_a_fleet_matrix_is_measured_before_it_is_built():
    # 240 values expand to 60^4 = 13 million members: 9 s and 1.1 GB when the product was built first
    data = {**spec_from_data_good(), "name": "pv-{a}-{b}-{c}-{d}"}
    data["fleet"] = {key: list(range(60)) for key in "abcd"}
    refused_fast(lambda: spec_from_data(data), SpecError, "fleet has 12960000 members; at most 1000")
