"""The registry's contract, run identically on embedded SQLite, embedded PostgreSQL and the REST server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from maestrale.errors import (
    Conflict,
    InvalidInput,
    InvalidName,
    NotFound,
    UnsupportedModel,
    UntrustedArtifact,
)


def _name(request: pytest.FixtureRequest) -> str:
    # unique per test and per backend, since the PostgreSQL database is shared by the session
    return f"m-{abs(hash(request.node.nodeid)) % 10**10}"


def test_register_load_roundtrip_with_metadata(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    model = Ridge(alpha=0.5).fit(X, y)
    mv = registry.register(
        name,
        model,
        params={"alpha": 0.5, "solver": "auto"},
        metrics={"nmae": 0.061},
        tags={"site": "p50"},
        input_example=X.head(),
        training_data=X,
        data_version="dvc:abc123",
        duration_s=1.25,
        reason="first fit",
    )
    assert mv.version == 1
    got = registry.get_version(f"{name}:1")
    assert got.params == {"alpha": 0.5, "solver": "auto"}
    assert got.metrics == {"nmae": 0.061}
    assert got.tags == {"site": "p50"}
    assert [c.name for c in got.input_schema] == list(X.columns)
    assert {c.dtype for c in got.input_schema} == {"float64"}
    assert got.data_fingerprint.startswith("sha256:") and len(got.data_fingerprint) == 71
    assert got.data_version == "dvc:abc123"
    assert got.duration_s == 1.25 and got.reason == "first fit"
    assert got.package_versions["scikit-learn"] and got.package_versions["python"]
    assert got.artifact.format == "skops" and got.artifact.flavor.endswith("Ridge")
    assert len(got.artifact.sha256) == 64
    assert got.created_at.tzinfo is not None
    loaded = registry.load(f"{name}:1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_versions_increase_and_aliases_resolve(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    models = [Ridge(alpha=a).fit(X, y) for a in (0.1, 10.0, 100.0)]
    versions = [registry.register(name, m, parent_version=None).version for m in models]
    assert versions == [1, 2, 3]
    with pytest.raises(NotFound, match="no alias 'champion'"):
        registry.load(name)
    registry.set_alias(name, "champion", 2, reason="best backtest")
    np.testing.assert_allclose(registry.load(name).predict(X), models[1].predict(X))
    np.testing.assert_allclose(registry.load(f"{name}@champion").predict(X), models[1].predict(X))
    registry.set_alias(name, "champion", 3)
    registry.set_alias(name, "challenger", 1)
    loaded = registry.load_version(f"{name}@champion")
    assert loaded.version == 3
    history = registry.alias_history(name, "champion")
    assert [(h.previous_version, h.version) for h in history] == [(None, 2), (2, 3)]
    assert history[0].reason == "best backtest" and history[0].actor
    assert registry.get_model(name).aliases == {"champion": 3, "challenger": 1}
    assert registry.get_version(f"{name}:3").aliases == ["champion"]
    registry.delete_alias(name, "challenger")
    assert registry.alias_history(name, "challenger")[-1].version is None
    with pytest.raises(NotFound):
        registry.get_version(f"{name}@challenger")


def test_parent_version_and_lineage(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    registry.register(name, Ridge().fit(X, y))
    mv = registry.register(name, Ridge(alpha=2).fit(X, y), parent_version=1, reason="drift on ghi")
    got = registry.get_version(mv.ref)
    assert got.parent_version == 1 and got.reason == "drift on ghi"
    assert {"relation": "parent", "target": f"{name}:1", "detail": {"reason": "drift on ghi"}} in got.lineage
    with pytest.raises(InvalidInput, match="parent_version 9"):
        registry.register(name, Ridge().fit(X, y), parent_version=9)


def test_pipeline_with_column_transformer_roundtrip(registry, request):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "ghi": rng.uniform(0, 1000, 300),
            "temp": rng.normal(15, 8, 300),
            "site": rng.choice(["p50", "p51", "p52"], 300),
        }
    )
    y = X["ghi"] * 0.003 + (X["site"] == "p51") * 0.2
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["ghi", "temp"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["site"]),
                    ]
                ),
            ),
            ("gbm", HistGradientBoostingRegressor(max_iter=20, random_state=0)),
        ]
    ).fit(X, y)
    mv = registry.register(_name(request), pipe, input_example=X.head())
    assert mv.artifact.flavor == "sklearn.pipeline.Pipeline"
    assert [c.dtype for c in mv.input_schema] == ["float64", "float64", "object"] or mv.input_schema[
        2
    ].dtype in ("str", "string")
    np.testing.assert_allclose(registry.load(mv.ref).predict(X), pipe.predict(X))


class NotAModel:
    def predict(self, X):
        return X


def test_unsupported_object_is_refused_and_nothing_registered(registry, request):
    name = _name(request)
    with pytest.raises(UnsupportedModel, match="supported: scikit-learn"):
        registry.register(name, NotAModel())
    with pytest.raises(NotFound):
        registry.get_model(name)


def test_pickle_needs_explicit_trust(registry, request):
    name = _name(request)
    mv = registry.register(name, {"weights": [1, 2, 3]}, format="pickle")
    assert mv.artifact.format == "pickle"
    with pytest.raises(UntrustedArtifact, match="trusted=True"):
        registry.load(mv.ref)
    assert registry.load(mv.ref, trusted=True) == {"weights": [1, 2, 3]}


@pytest.mark.parametrize("bad", ["../etc/passwd", "UPPER", "", "a/b", "-lead", "x" * 129, "a..b"])
def test_invalid_names_are_refused(registry, regression_data, bad):
    X, y = regression_data
    with pytest.raises(InvalidName, match="invalid model name"):
        registry.register(bad, Ridge().fit(X, y))


def test_unknown_model_version_alias(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    with pytest.raises(NotFound, match=f"model '{name}' not found"):
        registry.get_version(f"{name}:1")
    registry.register(name, Ridge().fit(X, y))
    with pytest.raises(NotFound, match="version 7"):
        registry.get_version(f"{name}:7")
    with pytest.raises(NotFound, match="no alias 'staging'"):
        registry.load(f"{name}@staging")
    with pytest.raises(NotFound, match="version 5"):
        registry.set_alias(name, "champion", 5)
    with pytest.raises(InvalidInput, match="versions are integers"):
        registry.get_version(f"{name}:0")


def test_archive_semantics(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    for _ in range(2):
        registry.register(name, Ridge().fit(X, y), tags={"site": "p50"})
    registry.set_alias(name, "champion", 1)
    with pytest.raises(Conflict, match="still aliased as champion"):
        registry.archive(f"{name}:1")
    archived = registry.archive(f"{name}:2")
    assert archived.status == "archived"
    with pytest.raises(Conflict, match="archived"):
        registry.set_alias(name, "champion", 2)
    found = registry.search_versions(f"name = '{name}'")
    assert [v.version for v in found.items] == [1]
    found = registry.search_versions(f"name = '{name}'", include_archived=True)
    assert sorted(v.version for v in found.items) == [1, 2]
    # archived versions stay loadable by exact reference, for reproducibility
    assert registry.load(f"{name}:2").predict(X.head(1)).shape == (1,)
    registry.archive(name)
    assert name not in [m.name for m in registry.list_models().items]
    assert name in [m.name for m in registry.list_models(include_archived=True).items]


def test_search_filters_order_and_pages(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    model = Ridge().fit(X, y)
    for i in range(12):
        registry.register(
            name,
            model,
            params={"alpha": i / 2, "solver": "svd" if i % 2 else "auto"},
            metrics={"nmae": 0.1 - i * 0.005},
            tags={"site": f"p{i % 3}"},
        )
    page = registry.search_versions(f"name = '{name}' and metrics.nmae < 0.072", order_by="metrics.nmae asc")
    assert [v.version for v in page.items] == [12, 11, 10, 9, 8, 7]
    page = registry.search_versions(f"name = '{name}' and tags.site = 'p1' and params.solver = 'svd'")
    assert sorted(v.version for v in page.items) == [2, 8]
    page = registry.search_versions(f"name = '{name}' and params.alpha >= 4.5")
    assert sorted(v.version for v in page.items) == [10, 11, 12]
    seen, token = [], None
    while True:
        page = registry.search_versions(f"name = '{name}'", order_by="version asc", limit=5, page_token=token)
        seen += [v.version for v in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == list(range(1, 13))
    listed = registry.list_versions(name, limit=100)
    assert [v.version for v in listed.items] == list(range(12, 0, -1))
    with pytest.raises(InvalidInput, match="unknown field"):
        registry.search_versions("weight > 3")
    with pytest.raises(InvalidInput, match="'or' is not supported"):
        registry.search_versions("name = 'a' or name = 'b'")
    with pytest.raises(InvalidInput, match="page_token"):
        registry.search_versions(f"name = '{name}'", page_token="garbage!")


def test_tags_are_mutable_but_versions_are_not(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    mv = registry.register(name, Ridge().fit(X, y), tags={"site": "p50"})
    registry.set_tag(mv.ref, "reviewed", "yes")
    registry.set_tag(mv.ref, "site", None)
    assert registry.get_version(mv.ref).tags == {"reviewed": "yes"}
    registry.set_tag(name, "owner", "forecasting-team")
    assert registry.get_model(name).tags == {"owner": "forecasting-team"}
    # the Python API offers no way to change an artifact or metrics; the frozen model refuses edits
    with pytest.raises(Exception, match="frozen"):
        mv.metrics = {"nmae": 0}  # type: ignore[misc]


def test_verify_detects_corruption(sqlite_registry, regression_data, tmp_path):
    from maestrale.errors import ArtifactMissing, IntegrityError

    X, y = regression_data
    mv = sqlite_registry.register("corrupt-me", Ridge().fit(X, y))
    assert sqlite_registry.verify(mv.ref).ok
    path = tmp_path / "artifacts" / mv.artifact.key
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    result = sqlite_registry.verify(mv.ref)
    assert not result.ok and "corrupted" in result.detail and "corrupt-me:1" in result.detail
    with pytest.raises(IntegrityError, match=r"corrupt-me:1 is corrupted: object objects/sha256/"):
        sqlite_registry.load(mv.ref)
    path.unlink()
    with pytest.raises(ArtifactMissing, match=r"corrupt-me:1 is missing: object objects/sha256/"):
        sqlite_registry.load(mv.ref)


def test_search_returns_summaries_unless_full(registry, regression_data, request):
    X, y = regression_data
    name = _name(request)
    registry.register(
        name,
        Ridge().fit(X, y),
        input_example=X.head(),
        spec={"target": "power_kw"},
        profile={"x0": {"mean": 0.0}},
        metrics={"nmae": 0.1},
    )
    summary = registry.search_versions(f"name = '{name}'").items[0]
    assert summary.metrics == {"nmae": 0.1} and summary.artifact.sha256
    assert summary.input_schema is None and summary.spec is None and summary.package_versions == {}
    full = registry.search_versions(f"name = '{name}'", full=True).items[0]
    assert [c.name for c in full.input_schema] == list(X.columns)
    assert full.spec == {"target": "power_kw"} and full.profile == {"x0": {"mean": 0.0}}
    assert full.package_versions["scikit-learn"]
    assert registry.list_versions(name, full=True).items[0] == full == registry.get_version(f"{name}:1")
