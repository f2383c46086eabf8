"""Training specs: YAML loading, errors that name the field, the line and the fix; fleets; estimators."""

from __future__ import annotations

import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from maestrale.training import estimators
from maestrale.training.fleet import expand_fleet, mask_secrets
from maestrale.training.spec import DvcSource, SpecError, TrainingSpec, UriSource, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "specs"

GOOD = """\
name: pv-nrel-50
data: {dataset: nrel_system50, freq: 1h}
target: power_kw
feature_set: pv_features
estimator: sklearn.ensemble:HistGradientBoostingRegressor
params: {max_iter: 20}
split:
  holdout: {test_start: 2011-08-01}
  backtest: {folds: 3, test_size: 14D}
baselines:
  persistence: {lag: 24h}
  climatology:
capacity: 3.4
"""


def errors_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(textwrap.dedent(text))
    return info.value


def test_a_good_spec_loads_with_defaults():
    spec = load_spec(GOOD)
    assert spec.split.holdout.test_start == date(2011, 8, 1)
    assert spec.split.backtest is not None and spec.split.backtest.test_size == "14D"
    assert spec.baselines.climatology is not None and spec.baselines.climatology.by == "hour_of_day"
    assert spec.metric_names() == ["mae", "rmse", "bias", "mape", "nmae", "nrmse", "skill"]
    assert spec.max_nan_share == 0.2


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_loads_and_expands(path: Path):
    members = expand_fleet(load_spec(path))
    assert members and all(m.fleet is None for m in members)
    for member in members:
        if isinstance(member.data, UriSource):  # relative paths resolved against the spec's folder
            assert Path(member.data.uri).is_file(), member.data.uri


def test_unknown_field_gives_line_and_suggestion():
    err = errors_of(GOOD.replace("estimator:", "estimater:"))
    [missing, unknown] = sorted(err.issues, key=lambda i: i.message)
    assert unknown.line == 5 and unknown.path == "estimater"
    assert "did you mean 'estimator'" in unknown.message
    assert "required field 'estimator' is missing" in missing.message
    assert "sklearn.ensemble:HistGradientBoostingRegressor" in missing.message  # what to write
    assert "line 5: estimater: unknown field" in str(err)


def test_bad_nested_value_points_at_its_line():
    err = errors_of(GOOD.replace("test_start: 2011-08-01", "test_start: next tuesday"))
    [issue] = err.issues
    assert (issue.path, issue.line) == ("split.holdout.test_start", 8)
    assert "write an ISO date like 2011-08-01" in issue.message


def test_duration_and_number_errors_say_what_to_write():
    err = errors_of(GOOD.replace("lag: 24h", "lag: 24 hours").replace("folds: 3", "folds: three"))
    by_path = {i.path: i for i in err.issues}
    assert by_path["baselines.persistence.lag"].line == 11
    assert '"24h"' in by_path["baselines.persistence.lag"].message
    assert by_path["split.backtest.folds"].line == 9
    assert "folds: 3" in by_path["split.backtest.folds"].message


def test_estimator_written_with_a_dot_is_corrected():
    err = errors_of(GOOD.replace("sklearn.ensemble:Hist", "sklearn.ensemble.Hist"))
    [issue] = err.issues
    assert issue.line == 5
    assert "write sklearn.ensemble:HistGradientBoostingRegressor" in issue.message


def test_cross_field_rules():
    err = errors_of(GOOD.replace("capacity: 3.4", "metrics: [nmae]"))
    assert "capacity: 3.4" in err.issues[0].message
    err = errors_of(GOOD.replace("persistence: {lag: 24h}", "").replace("capacity: 3.4", "metrics: [skill]"))
    assert "persistence" in err.issues[0].message
    err = errors_of(GOOD.replace("feature_set: pv_features", "features: [ghi, power_kw]"))
    assert "must not see its target" in err.issues[0].message


def test_data_needs_a_known_source_kind():
    err = errors_of(GOOD.replace("{dataset: nrel_system50, freq: 1h}", "{path: x.csv}"))
    [issue] = err.issues
    assert issue.line == 2 and "uri" in issue.message and "dvc" in issue.message and "sql" in issue.message
    err = errors_of(GOOD.replace("nrel_system50", "nrel_system51"))
    assert err.issues[0].path == "data.dataset" and "nrel_system50" in err.issues[0].message


def test_yaml_syntax_error_has_a_line():
    err = errors_of("name: x\ndata: {dataset: nrel_system50\ntarget: y\n")
    assert err.issues[0].line is not None and "not valid YAML" in err.issues[0].message


def test_bad_model_name_is_refused_with_the_rule():
    err = errors_of(GOOD.replace("name: pv-nrel-50", "name: PV/../x"))
    assert err.issues[0].line == 1 and "lowercase letters" in err.issues[0].message


def test_dvc_uri_shorthand_and_relative_paths(tmp_path: Path):
    spec = load_spec(
        GOOD.replace("{dataset: nrel_system50, freq: 1h}", "{uri: 'dvc:///srv/repo?path=d.csv&rev=v2'}")
    )
    assert isinstance(spec.data, DvcSource)
    assert (spec.data.dvc.repo, spec.data.dvc.path, spec.data.dvc.rev) == ("/srv/repo", "d.csv", "v2")
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace("{dataset: nrel_system50, freq: 1h}", "{uri: data/pv.csv}"))
    spec = load_spec(path)
    assert isinstance(spec.data, UriSource) and spec.data.uri == str(tmp_path / "data" / "pv.csv")


def test_recorded_spec_round_trips_and_hides_secrets():
    spec = load_spec(GOOD)
    assert TrainingSpec.model_validate(spec.to_record()) == spec
    sql = load_spec(
        GOOD.replace(
            "{dataset: nrel_system50, freq: 1h}",
            "{sql: {url: 'postgresql+psycopg://pv:hunter2@db/pv', query: 'SELECT 1'}}",
        )
    )
    assert "hunter2" not in str(sql.to_record())
    assert mask_secrets({"url": "postgresql://pv:${PW}@db/pv"}) == {"url": "postgresql://pv:${PW}@db/pv"}
    assert mask_secrets({"uri": "abfs://c/x.csv?sv=1&sig=abc"})["uri"].endswith("sig=***")


FLEET = """\
fleet: {site: [p50, p51], kind: [a, b]}
name: pv-{site}-{kind}
data: {uri: "/data/{site}.csv"}
target: power_kw
features: [ghi]
estimator: ridge
tags: {owner: ops}
"""


def test_fleet_matrix_expands_with_templates_and_tags():
    members = expand_fleet(load_spec(FLEET))
    assert [m.name for m in members] == ["pv-p50-a", "pv-p50-b", "pv-p51-a", "pv-p51-b"]
    first = members[0]
    assert isinstance(first.data, UriSource) and first.data.uri == "/data/p50.csv"
    assert first.tags == {"owner": "ops", "site": "p50", "kind": "a", "fleet": "pv-{site}-{kind}"}


def test_fleet_list_members_override_fields():
    text = FLEET.replace(
        "fleet: {site: [p50, p51], kind: [a, b]}", "fleet: [{site: p50, capacity: 3.4}, {site: p51}]"
    )
    members = expand_fleet(load_spec(text.replace("pv-{site}-{kind}", "pv-{site}")))
    assert [(m.name, m.capacity) for m in members] == [("pv-p50", 3.4), ("pv-p51", None)]


def test_fleet_errors():
    err = errors_of(FLEET.replace("pv-{site}-{kind}", "pv-{site}"))
    assert err.issues[0].line == 2 and "same for several fleet members" in err.issues[0].message
    err = errors_of(FLEET.replace("pv-{site}-{kind}", "pv-{sit}"))
    assert "{sit}" in err.issues[0].message and "site" in err.issues[0].message
    text = FLEET.replace(
        "fleet: {site: [p50, p51], kind: [a, b]}", "fleet: [{site: p50}, {site: p51, capacity: -1}]"
    )
    err = errors_of(text.replace("pv-{site}-{kind}", "pv-{site}"))
    [issue] = err.issues
    assert issue.path == "capacity" and "fleet member site=p51" in issue.message


def test_estimators_by_path_alias_and_errors():
    est, params = estimators.build_estimator(
        "sklearn.linear_model:LinearRegression", {"fit_intercept": False}
    )
    assert type(est).__name__ == "LinearRegression" and params == {"fit_intercept": False}  # no seed to set
    est, params = estimators.build_estimator("ridge", {"alpha": 2.0})
    assert type(est).__name__ == "Ridge" and params == {"alpha": 2.0, "random_state": 0}
    est, params = estimators.build_estimator("hgb", {"random_state": None})
    assert params["random_state"] is None  # an explicit null opts out of the default seed
    lgbm, params = estimators.build_estimator("lightgbm", {})
    assert type(lgbm).__name__ == "LGBMRegressor" and params["verbose"] == -1
    with pytest.raises(Exception, match="cannot import module 'sklearn.nosuchpkg'"):
        estimators.build_estimator("sklearn.nosuchpkg:Model", {})
    with pytest.raises(Exception, match="it accepts: .*max_iter"):
        estimators.build_estimator("hgb", {"n_trees": 3})
    with pytest.raises(Exception, match="collections:OrderedDict is not an estimator class"):
        estimators.build_estimator("collections:OrderedDict", {})  # tests/unit/test_spec_trust.py: more
    with pytest.raises(ValueError, match="unknown estimator 'catboost'.*module:Class"):
        estimators.check_estimator_ref("catboost")


def test_estimator_plugin_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # a real installed distribution (dist-info on sys.path), as `pip install acme-models` would leave
    (tmp_path / "acme_models.py").write_text(
        "from sklearn.linear_model import Ridge\n\ndef make(**params):\n    return Ridge(**params)\n"
    )
    info = tmp_path / "acme_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[maestrale.estimators]\nacme-ridge = acme_models:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    estimators.plugins.cache_clear()
    try:
        spec = load_spec(GOOD.replace("sklearn.ensemble:HistGradientBoostingRegressor", "acme-ridge"))
        est, _ = estimators.build_estimator(spec.estimator, {"alpha": 0.5})
        assert type(est).__name__ == "Ridge" and est.alpha == 0.5
        assert estimators.estimator_name("acme-ridge") == "plugin:acme-ridge"
    finally:
        estimators.plugins.cache_clear()
        sys.modules.pop("acme_models", None)


def test_duplicated_keys_are_refused_not_silently_dropped():
    err = errors_of(GOOD + "capacity: 5.0\n")
    [issue] = err.issues
    assert issue.line == 14 and "given twice (first on line 13)" in issue.message


BACKTEST = "  backtest: {folds: 3, test_size: 14D}\n"


def test_refit_is_off_by_default_and_both_new_fields_round_trip():
    spec = load_spec(GOOD)
    assert spec.split.refit is False and spec.sample_weight is None
    assert "sample_weight" not in spec.to_record() and spec.to_record()["split"]["refit"] is False
    spec = load_spec(
        GOOD.replace(BACKTEST, BACKTEST + "  refit: true\n") + "sample_weight: {half_life: 7D}\n"
    )
    assert (
        spec.split.refit is True and spec.sample_weight is not None and spec.sample_weight.half_life == "7D"
    )
    record = spec.to_record()
    assert record["sample_weight"] == {"half_life": "7D"} and record["split"]["refit"] is True
    assert TrainingSpec.model_validate(record) == spec  # `maestrale reproduce` re-reads the record


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        (
            "{half_life: 7 parsecs}",
            "sample_weight.half_life",
            "'7 parsecs' is not a duration: write a number",
        ),
        ("{half_life: 0D}", "sample_weight.half_life", "half_life '0D' must be longer than zero"),
        ("7D", "sample_weight", 'write sample_weight: {half_life: "7D"}'),
        ("{halflife: 7D}", "sample_weight", "unknown field 'halflife': sample_weight takes only half_life"),
        ("{}", "sample_weight", "half_life is missing"),
    ],
)
def test_bad_sample_weight_names_the_field_line_and_fix(value: str, path: str, message: str):
    err = errors_of(GOOD + f"sample_weight: {value}\n")
    [issue] = err.issues
    assert (issue.path, issue.line) == (path, 14)
    assert message in issue.message
    assert f"line 14: {path}: " in str(err)


def test_bad_refit_is_refused():
    err = errors_of(GOOD.replace(BACKTEST, BACKTEST + "  refti: true\n"))
    assert err.issues[0].path == "split.refti" and "did you mean 'refit'" in err.issues[0].message
    err = errors_of(GOOD.replace(BACKTEST, BACKTEST + "  refit: sometimes\n"))
    assert err.issues[0].path == "split.refit" and err.issues[0].line == 10


def test_sample_weight_key_follows_pipelines_and_refuses_estimators_without_it():
    import numpy as np
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from maestrale.errors import InvalidInput

    ridge, _ = estimators.build_estimator("ridge")
    assert estimators.sample_weight_key(ridge, "ridge") == "sample_weight"
    pipe = make_pipeline(StandardScaler(), make_pipeline(StandardScaler(), ridge))
    key = estimators.sample_weight_key(pipe, "acme.models:pipeline")
    assert key == "pipeline__ridge__sample_weight"
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    pipe.fit(X, y, **{key: np.linspace(0.1, 1, 10)})  # sklearn routes it to the innermost Ridge

    class KwargsRegressor:  # a fit taking **kwargs may well use sample_weight: let it
        def fit(self, X, y, **kwargs): ...

    assert estimators.sample_weight_key(KwargsRegressor(), "acme:Kw") == "sample_weight"
    with pytest.raises(InvalidInput) as info:
        estimators.sample_weight_key(KNeighborsRegressor(), "sklearn.neighbors:KNeighborsRegressor")
    assert str(info.value) == (
        "estimator 'sklearn.neighbors:KNeighborsRegressor' (KNeighborsRegressor) does not accept "
        "sample_weight: its fit(X, y) has no sample_weight parameter; remove `sample_weight:` from the "
        "spec, or choose an estimator that supports it, e.g. hgb, ridge, lightgbm"
    )
    with pytest.raises(InvalidInput, match="the last step 'kneighborsregressor' of estimator 'acme:knn'"):
        estimators.sample_weight_key(make_pipeline(StandardScaler(), KNeighborsRegressor()), "acme:knn")
