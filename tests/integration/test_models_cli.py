"""Versions a person can read: `models show NAME:VERSION`, metric columns, `models compare`, full JSON,
and `maestrale train` skipping a member whose spec, data and code are unchanged (locally and through
the training service on RabbitMQ, whose `train.completed` then says `reused`).

The models are trained from a small synthetic CSV (60 days, hourly) by the real trainer, so each
version records what a real one does: holdout, backtest and baseline metrics, spec, lineage.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from maestrale.cli.main import app
from tests.integration.conftest import wait_for

SPEC = """\
name: pv-foggia
data: {{uri: foggia.csv}}
time_column: time
target: power_kw
features: [ghi, temp_air]
estimator: ridge
params: {{alpha: {alpha}}}
split:
  holdout: {{test_fraction: 0.2}}
  backtest: {{folds: 2, test_size: 7D}}
baselines: {{persistence: {{lag: 24h}}}}
capacity: 5.0
"""


def write_data(folder: Path, days: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    time = pd.date_range("2023-05-01", periods=24 * days, freq="h", tz="UTC")
    sun = np.clip(np.sin((time.hour.to_numpy() - 6) / 12 * np.pi), 0, None)
    ghi = 900 * sun * rng.uniform(0.5, 1.0, len(time))
    temp = 18 + 8 * sun + rng.normal(0, 1, len(time))
    power = np.clip(0.0045 * ghi - 0.01 * (temp - 25) * sun + rng.normal(0, 0.05, len(time)), 0, 5)
    frame = pd.DataFrame({"time": time.strftime("%Y-%m-%dT%H:%MZ"), "ghi": ghi, "temp_air": temp})
    frame.assign(power_kw=power).to_csv(folder / "foggia.csv", index=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder (`.maestrale`) holding the data and two specs; the code version is pinned."""
    from maestrale.registry.metadata import code_version

    for var in (
        "MAESTRALE_HOME",
        "MAESTRALE_DATABASE_URL",
        "MAESTRALE_STORAGE_URL",
        "MAESTRALE_REGISTRY_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAESTRALE_BROKER_URL", "memory://")
    root = tmp_path / "pv-italia"
    (root / ".maestrale").mkdir(parents=True)
    write_data(root)
    (root / "foggia.yaml").write_text(SPEC.format(alpha=1.0))
    (root / "foggia-alpha10.yaml").write_text(SPEC.format(alpha=10.0))
    monkeypatch.chdir(root)
    # this checkout has uncommitted changes, which never match: pin the code version, as CI would
    monkeypatch.setenv("MAESTRALE_CODE_VERSION", "4f2c9e1")
    code_version.cache_clear()
    yield root
    code_version.cache_clear()


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def two_versions(project: Path) -> Path:
    """pv-foggia:1 (alpha 1) and pv-foggia:2 (alpha 10); champion → 1."""
    for spec in ("foggia.yaml", "foggia-alpha10.yaml"):
        result = cli("train", spec, "--local")
        assert result.exit_code == 0, result.output
    assert cli("models", "alias", "pv-foggia", "champion", "1").exit_code == 0
    return project


# -- reading versions ------------------------------------------------------------------------------
def test_show_one_version(two_versions: Path) -> None:
    for ref in ("pv-foggia:1", "pv-foggia@champion"):
        result = cli("models", "show", ref)
        assert result.exit_code == 0, result.output
        text = result.stdout
        assert text.startswith("pv-foggia:1") and "champion" in text
        # the metric matrix: one row per metric, one column per evaluation
        assert re.search(r"metric\s+.*holdout\s+.*backtest\s+.*fold1\s+.*fold2\s+.*persistence", text)
        assert re.search(r"nmae\s+.*\d", text) and "backtest_fold1_nmae" not in text
        assert "ridge" in text and "foggia.csv" in text and "training_data" in text  # spec, lineage
        assert "fingerprint sha256:" in text and "4f2c9e1" in text  # data and code
    full = cli_json("models", "show", "pv-foggia:2")
    assert full["params"]["alpha"] == 10.0 and full["spec"]["params"] == {"alpha": 10.0}
    assert [c["name"] for c in full["input_schema"]] == ["ghi", "temp_air"]
    model = cli("models", "show", "pv-foggia")  # NAME alone: the model, as before
    assert model.exit_code == 0 and "latest version" in model.stdout
    missing = cli("models", "show", "pv-foggia:9")
    assert missing.exit_code == 1 and "version 9" in missing.stderr


def test_json_listings_are_full_records(two_versions: Path) -> None:
    for args in (("models", "versions", "pv-foggia"), ("models", "search", "name = 'pv-foggia'")):
        items = cli_json(*args)
        assert len(items) == 2
        assert all(v["input_schema"] and v["spec"] and v["package_versions"] for v in items), args


def test_metric_columns(two_versions: Path) -> None:
    header = cli("models", "versions", "pv-foggia").stdout.splitlines()[2]
    assert re.findall(r"[a-z_]+", header)[3:7] == ["nmae", "rmse", "skill", "backtest_nmae"]
    assert "persistence_nmae" not in header and "backtest_fold1" not in header
    chosen = cli("models", "versions", "pv-foggia", "--metrics", "nmae,persistence_nmae")
    assert re.search(r"nmae\s+\S+\s+persistence_nmae", chosen.stdout) and "rmse" not in chosen.stdout
    every = cli("models", "search", "name = 'pv-foggia'", "--metrics", "all")
    assert "backtest_fold2_mae=" in every.stdout
    unknown = cli("models", "search", "name = 'pv-foggia'", "--metrics", "nmea")
    assert unknown.exit_code == 0 and "no version here records nmea; recorded:" in unknown.stderr


def test_compare_two_versions(two_versions: Path) -> None:
    result = cli("models", "compare", "pv-foggia:1", "pv-foggia:2")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "│" in line]  # table rows
    (alpha,) = [line for line in lines if re.search(r"\balpha\b", line)]
    assert "≠" in alpha and "1.0" in alpha and "10.0" in alpha
    (fingerprint,) = [line for line in lines if "fingerprint" in line]
    assert "≠" not in fingerprint  # same data
    assert "--- pv-foggia:1 spec" in result.stdout and "+++ pv-foggia:2 spec" in result.stdout
    assert "-  alpha: 1.0" in result.stdout and "+  alpha: 10.0" in result.stdout

    data = cli_json("models", "compare", "pv-foggia@champion", "pv-foggia:2", "--metrics", "nmae")
    assert data["refs"] == ["pv-foggia:1", "pv-foggia:2"]
    assert data["params"]["alpha"] == [1.0, 10.0] and list(data["metrics"]) == ["nmae"]
    assert data["data"]["fingerprint"][0] == data["data"]["fingerprint"][1]
    assert "+  alpha: 10.0" in data["spec_diffs"][0]["diff"]
    assert [v["spec"]["params"]["alpha"] for v in data["versions"]] == [1.0, 10.0]


def test_compare_needs_two_to_ten_known_refs(two_versions: Path) -> None:
    one = cli("models", "compare", "pv-foggia:1")
    assert one.exit_code == 2 and "give 2 to 10 references" in one.output
    assert cli("models", "compare", *["pv-foggia:1"] * 11).exit_code == 2
    unknown = cli("models", "compare", "pv-foggia:1", "pv-bari:1")
    assert unknown.exit_code == 1 and "'pv-bari' not found" in unknown.stderr


# -- skipping an unchanged training ------------------------------------------------------------------
def versions_of(name: str) -> list[int]:
    return [v["version"] for v in cli_json("models", "versions", name)]


def test_train_skips_an_unchanged_member_and_force_retrains(project: Path) -> None:
    first = cli("train", "foggia.yaml", "--local")
    assert first.exit_code == 0, first.output
    again = cli("train", "foggia.yaml", "--local")
    assert again.exit_code == 0, again.output
    assert "1 (unchanged)" in again.stdout
    assert "pv-foggia: not trained, pv-foggia:1 has the same spec, data and code" in again.stderr
    [result] = cli_json("train", "foggia.yaml", "--local")["results"]
    assert (result["version"], result["reused"]) == (1, True)
    assert versions_of("pv-foggia") == [1]

    forced = cli("train", "foggia.yaml", "--local", "--force")
    assert forced.exit_code == 0 and versions_of("pv-foggia") == [2, 1]

    write_data(project, seed=1)  # new measurements: the fingerprint changes
    changed = cli("train", "foggia.yaml", "--local")
    assert "trained, as the data changed since pv-foggia:2" in changed.stderr
    assert versions_of("pv-foggia") == [3, 2, 1]


def test_uncommitted_code_is_never_taken_as_unchanged(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from maestrale.registry.metadata import code_version

    monkeypatch.setenv("MAESTRALE_CODE_VERSION", "4f2c9e1+dirty")
    code_version.cache_clear()
    assert cli("train", "foggia.yaml", "--local").exit_code == 0
    again = cli("train", "foggia.yaml", "--local")
    assert "trained, as the work tree has uncommitted changes" in again.stderr
    assert versions_of("pv-foggia") == [2, 1]


@pytest.mark.slow
def test_the_training_service_reports_the_existing_version(
    project: Path, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real worker process on RabbitMQ: the second request completes with version 1, `reused`."""
    import os

    from maestrale.bus.consumer import Consumer
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.training.worker import declare_training_queue

    namespace = f"reuse-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MAESTRALE_BROKER_URL", amqp_url)
    monkeypatch.setenv("MAESTRALE_BUS_NAMESPACE", namespace)
    monkeypatch.setenv("MAESTRALE_DATA_SOURCES", str(project))  # the worker may read the project's data
    bus = RabbitTransport(amqp_url, namespace=namespace)
    declare_training_queue(bus)
    completed: list[Any] = []
    events = Consumer(
        bus, "test-completed", lambda e: completed.append(e.payload), ["maestrale.train.completed"]
    )
    events.declare()
    events.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "maestrale.cli.main", "worker"], cwd=project, env=dict(os.environ),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        runs = [cli_json("train", "foggia.yaml", "--wait", "--timeout", "120") for _ in range(2)]
        wait_for(lambda: len(completed) == 2, timeout=30, what="both train.completed events")
    finally:
        worker.terminate()
        worker.wait(30)
        events.stop()
        bus.delete()
        bus.close()
    assert [(r[0]["status"], r[0]["version"], r[0]["reused"]) for r in runs] == [
        ("completed", 1, False),
        ("completed", 1, True),
    ]
    assert sorted((e.version, e.reused) for e in completed) == [(1, False), (1, True)]
    assert versions_of("pv-foggia") == [1]
