"""Training end to end on real NREL data and real registries: what is registered, fleets, reproduce, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from typer.testing import CliRunner

from maestrale.cli.main import app
from maestrale.training import TrainingTimeout, expand_fleet, load_spec, reproduce, train
from maestrale.training.reuse import spec_sha256
from maestrale.training.trainer import load_for
from maestrale.training.validate import prepare

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "specs"
# Small on purpose (2 cores, other work running): 10 weeks of hourly data, 30 boosting iterations.
SPEC = """\
name: pv-nrel-50
description: test model
data: {dataset: nrel_system50, freq: 1h}
target: power_kw
feature_set: pv_features
estimator: sklearn.ensemble:HistGradientBoostingRegressor
params: {max_iter: 30, learning_rate: 0.1}
train_window: {start: 2011-05-01, end: 2011-07-14}
split:
  holdout: {test_start: 2011-07-01}
  backtest: {folds: 2, test_size: 7D}
baselines:
  persistence: {lag: 24h}
  climatology: {by: hour_of_day}
capacity: 3.4
tags: {site: nrel-50}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's own MAESTRALE_* settings must not leak into these tests
    for var in (
        "MAESTRALE_HOME",
        "MAESTRALE_DATABASE_URL",
        "MAESTRALE_STORAGE_URL",
        "MAESTRALE_REGISTRY_URL",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC)


def test_train_registers_a_complete_version(spec, sqlite_registry):
    steps: list[tuple[str, int, int]] = []
    result = train(
        spec, sqlite_registry, reason="initial fit", request_id="req-1", progress=lambda *s: steps.append(s)
    )
    mv = sqlite_registry.get_version(result.ref)
    assert (mv.name, mv.version, mv.reason, mv.tags) == (
        "pv-nrel-50",
        1,
        "initial fit",
        {"site": "nrel-50", "request_id": "req-1", "spec_sha256": spec_sha256(spec)},
    )
    assert mv.spec == spec.to_record() and mv.spec["split"]["backtest"]["folds"] == 2
    assert mv.data_fingerprint == result.data_version.fingerprint and mv.data_fingerprint.startswith(
        "sha256:"
    )
    assert mv.lineage[0]["relation"] == "training_data"
    assert mv.lineage[0]["target"] == "maestrale://datasets/nrel_system50?freq=1h"
    assert mv.params["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert mv.params["max_iter"] == 30 and mv.params["random_state"] == 0
    assert mv.duration_s and mv.duration_s > 0
    # a feature pipeline: the model takes the raw inputs and records what its feature set read and made
    assert [c.name for c in mv.input_schema or []] == ["time", "ghi", "temp_air", "ghi_clear"]
    assert mv.params["inputs"] == "time,ghi,temp_air,ghi_clear" and "inputs_absent" not in mv.params
    assert mv.params["features"].startswith("hour_sin,hour_cos,") and result.features[0] == "hour_sin"
    for key in ("nmae", "nrmse", "skill", "backtest_nmae", "backtest_fold2_nmae", "persistence_nmae"):
        assert key in mv.metrics, key
    assert mv.metrics["climatology_nmae"] > mv.metrics["nmae"] and mv.metrics["skill"] > 0
    profile = mv.profile or {}
    assert profile["schema"] == "maestrale.profile/1" and profile["rows"] == result.n_train
    assert set(profile["columns"]) == {"ghi", "temp_air", "ghi_clear"}  # the numeric inputs
    assert profile["predictions"]["count"] == result.n_test and "target" in profile
    assert steps[0] == ("load data", 0, 5) and steps[-1] == ("done", 5, 5)

    # the recorded holdout metrics are the registered model's own, on rows it never saw
    prepared = prepare(spec, load_for(spec))
    test = prepared.times >= pd.Timestamp("2011-07-01", tz="UTC")
    assert prepared.times[~test].max() < prepared.times[test].min()
    pred = sqlite_registry.load(result.ref).predict(prepared.raw[test])
    y = prepared.y[test]
    assert result.metrics["nmae"] == pytest.approx(mean_absolute_error(y, pred) / 3.4, rel=1e-9)
    assert result.metrics["rmse"] == pytest.approx(root_mean_squared_error(y, pred), rel=1e-9)
    assert result.n_test == int(test.sum())


def test_backtest_folds_precede_the_holdout_and_average(spec, sqlite_registry):
    result = train(spec, sqlite_registry)
    assert len(result.backtest) == 2
    for fold in result.backtest:
        assert fold.train_end < fold.test_start < result.test_start
        assert fold.test_end < result.test_start  # the holdout stays untouched by the backtest
    assert result.backtest[0].test_end < result.backtest[1].test_start
    assert result.backtest_mean["nmae"] == pytest.approx(
        np.mean([f.metrics["nmae"] for f in result.backtest])
    )
    assert result.train_end < result.test_start
    assert (
        set(result.baselines) == {"persistence", "climatology"}
        and "skill" not in result.baselines["persistence"]
    )


def test_reproduce_gives_zero_differences_for_a_deterministic_estimator(spec, sqlite_registry):
    result = train(spec, sqlite_registry)
    report = reproduce(sqlite_registry, result.ref)
    assert report.identical and not report.data_changed and report.max_abs_difference == 0.0
    assert {m.metric for m in report.metrics} >= {"nmae", "backtest_nmae", "persistence_nmae"}
    assert all(m.difference == 0.0 for m in report.metrics)


def test_reproduce_says_when_the_file_changed(sqlite_registry, tmp_path: Path):
    from maestrale.datasets import nrel_system50

    df = nrel_system50("1h").loc["2011-06-01":"2011-06-21", ["ghi", "temp_air", "power_kw"]]
    path = tmp_path / "site.csv"
    df.to_csv(path)
    text = (
        f"name: pv-file\ndata: {{uri: {path}}}\ntime_column: time\ntarget: power_kw\n"
        "features: [ghi, temp_air]\nestimator: hgb\nparams: {max_iter: 10}\ncapacity: 3.4\n"
    )
    result = train(load_spec(text), sqlite_registry)
    assert reproduce(sqlite_registry, result.ref).identical
    df.assign(power_kw=df.power_kw * 1.1).to_csv(path)
    report = reproduce(sqlite_registry, result.ref)
    assert report.data_changed and not report.identical
    assert "the data changed since pv-file:1 was trained" in report.note and report.max_abs_difference > 0


def test_fleet_members_train_and_register_separately(sqlite_registry):
    text = SPEC.replace(
        "name: pv-nrel-50", "fleet: [{variant: full}, {variant: ghi, features: [ghi]}]\nname: pv-{variant}"
    )
    members = expand_fleet(load_spec(text.replace("folds: 2", "folds: 1")))
    cache: dict = {}
    results = [train(m, sqlite_registry, data=load_for(m, cache)) for m in members]
    assert [r.ref for r in results] == ["pv-full:1", "pv-ghi:1"] and len(cache) == 1
    ghi = sqlite_registry.get_version("pv-ghi:1")
    spec_tag = ghi.tags.pop("spec_sha256")  # what `train(..., reuse=True)` finds it by
    assert ghi.tags == {"site": "nrel-50", "variant": "ghi", "fleet": "pv-{variant}"} and len(spec_tag) == 64
    # the member's model still takes the raw inputs; its estimator sees only the chosen feature
    assert [c.name for c in ghi.input_schema or []] == ["time", "ghi", "temp_air", "ghi_clear"]
    assert ghi.params["features"] == "ghi"


def test_time_limit_registers_nothing(spec, sqlite_registry):
    quick = spec.model_copy(update={"time_limit_s": 1e-6})
    with pytest.raises(TrainingTimeout, match="time_limit_s=1e-06 exceeded"):
        train(quick, sqlite_registry)
    assert sqlite_registry.list_models().items == []


def test_training_against_a_remote_registry(spec, remote_registry):
    result = train(
        spec.model_copy(update={"split": spec.split.model_copy(update={"backtest": None})}), remote_registry
    )
    mv = remote_registry.get_version(result.ref)
    assert mv.spec and mv.profile and mv.metrics["nmae"] == result.metrics["nmae"]


@pytest.fixture
def small_example(tmp_path: Path) -> Path:
    """The NREL example spec with a shorter window and fewer iterations (the test machine is small)."""
    raw = yaml.safe_load((EXAMPLES / "pv-nrel-50.yaml").read_text())
    raw["params"]["max_iter"] = 30
    raw["train_window"] = {"start": "2011-05-01", "end": "2011-08-15"}
    raw["split"] = {"holdout": {"test_start": "2011-08-01"}, "backtest": {"folds": 3, "test_size": "7D"}}
    path = tmp_path / "pv-nrel-50.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_train_local_then_reproduce(small_example: Path, tmp_path: Path):
    runner = CliRunner()
    env = {"MAESTRALE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    out = runner.invoke(app, ["train", str(small_example), "--local"], env=env)
    assert out.exit_code == 0, out.output
    header = next(line for line in out.stdout.splitlines() if "model" in line)
    for col in ("version", "nMAE", "skill", "backtest nMAE", "duration"):
        assert col in header
    assert "pv-nrel-50" in out.stdout
    again = ["train", str(small_example), "--local", "--json", "--reason", "cli", "--force"]
    out = runner.invoke(app, again, env=env)
    assert out.exit_code == 0, out.output
    [result] = json.loads(out.stdout)["results"]
    assert result["ref"] == "pv-nrel-50:2" and len(result["backtest"]) == 3
    out = runner.invoke(app, ["reproduce", "pv-nrel-50:2", "--check"], env=env)
    assert out.exit_code == 0, out.output
    assert "difference" in out.stdout and "pv-nrel-50:2: identical" in out.stdout
    out = runner.invoke(app, ["reproduce", "pv-nrel-50:1", "--json"], env=env)
    assert json.loads(out.stdout)["max_abs_difference"] == 0.0


def test_cli_errors(small_example: Path, tmp_path: Path):
    runner = CliRunner()
    env = {"MAESTRALE_HOME": str(tmp_path / "home")}
    # without --local the spec goes through the training service (embedded: a worker in this process)
    out = runner.invoke(app, ["train", str(small_example), "--json"], env=env)
    assert out.exit_code == 0, out.output
    [record] = json.loads(out.stdout)
    assert record["status"] == "completed" and record["version"] == 1 and record["attempts"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(small_example.read_text().replace("target:", "targt:"))
    out = runner.invoke(app, ["train", str(bad), "--local"], env=env)
    assert out.exit_code == 1 and "did you mean 'target'" in out.stderr and "line" in out.stderr
    out = runner.invoke(app, ["train", str(small_example), "--local", "--only", "pv-x"], env=env)
    assert out.exit_code == 2 and "members: pv-nrel-50" in out.output
