"""The example services of `examples/services` run end to end, as their READMEs tell a newcomer to.

Each test copies one example into `tmp_path` (its data files are written there, never in the repo),
points the `MAESTRALE_*` settings at an embedded registry in `tmp_path` with the in-process bus, starts
the monitor's ingest (`MonitorService`) on that bus, and then: writes the training history → trains with
`maestrale train SPEC --local` → promotes with `maestrale models alias` → serves requests through the
example's own app (FastAPI `TestClient`) → checks that the logged predictions reach the monitor's store
→ delivers the actuals with the example's job → checks that the monitor scores them (n > 0).
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from maestrale import Registry
from maestrale.cli.main import app as cli
from maestrale.config import Settings, load_settings
from maestrale.monitoring.performance import performance
from maestrale.monitoring.service import MonitorService

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "services"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One OpenMP thread for the gradient-boosting fits: on 2 busy cores, more threads only spin."""
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime: threadpoolctl limits loaded ones only)

    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`MAESTRALE_*` for an embedded registry in tmp_path and a bus namespace of this test's own."""
    home = tmp_path / "home"
    home.mkdir()
    for var in ("MAESTRALE_REGISTRY_URL", "MAESTRALE_TOKEN", "MAESTRALE_STORAGE_OPTIONS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAESTRALE_HOME", str(home))
    monkeypatch.setenv("MAESTRALE_DATABASE_URL", f"sqlite:///{home}/registry.db")
    monkeypatch.setenv("MAESTRALE_STORAGE_URL", f"file://{home}/artifacts")
    monkeypatch.setenv("MAESTRALE_BROKER_URL", "memory://")
    monkeypatch.setenv("MAESTRALE_BUS_NAMESPACE", f"examples-{uuid.uuid4().hex[:8]}")
    # the wind example's specs name the factories of its turbine.py, as its README sets up
    monkeypatch.setenv("MAESTRALE_ESTIMATOR_MODULES", "turbine")
    return load_settings()


@pytest.fixture
def monitor(settings: Settings) -> Iterator[MonitorService]:
    """The monitor's ingest on the in-process bus (no evaluation loop: the tests evaluate when they want)."""
    service = MonitorService(settings, interval=None, relay=False).start()
    yield service
    service.stop()


@contextmanager
def example(name: str, tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    """Copy `examples/services/NAME` to tmp_path and import its modules from there (as `python x.py` would).

    The examples' modules have plain names (`service`, `deliver_actuals`): they are unloaded afterwards,
    so the next example's modules of the same name are its own.
    """
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    sys.path.insert(0, str(folder))
    try:
        yield lambda module: importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))
        for key, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
                del sys.modules[key]


def maestrale(*args: str) -> str:
    """Run the `maestrale` CLI in this process (same settings, same in-process bus); return its output."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"maestrale {' '.join(args)} failed:\n{result.output}"
    return result.output


def train(spec: Path) -> dict:
    """`maestrale train SPEC --local --json` → the one result."""
    (result,) = json.loads(maestrale("train", str(spec), "--local", "--json"))["results"]
    return result


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0, every: float = 0.05) -> None:
    """Poll `condition` every `every` seconds until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def test_pv_forecast_service_end_to_end(tmp_path: Path, settings: Settings, monitor: MonitorService) -> None:
    days = [date(2023, 10, 2), date(2023, 10, 3), date(2023, 10, 4)]  # after the training window
    with example("pv_forecast", tmp_path) as load:
        load("history").main([])
        assert (tmp_path / "pv_forecast" / "data" / "piemonte.parquet").exists()
        trained = train(tmp_path / "pv_forecast" / "train.yaml")
        assert trained["name"] == "pv-piemonte" and trained["version"] == 1
        assert 0 < trained["metrics"]["nmae"] < 0.1, trained["metrics"]  # simulated plant: easy to learn
        assert trained["metrics"]["nmae"] < trained["baselines"]["persistence"]["nmae"]
        maestrale("models", "alias", "pv-piemonte", "champion", "1", "--reason", "first model")

        service = load("service")
        with TestClient(service.create_app()) as client:
            assert client.get("/healthz").json() == {"ok": True, "plants": ["piemonte"]}
            assert client.post("/plants/nowhere/forecast", json={}).status_code == 404
            for day in days:
                issued = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC) + timedelta(
                    hours=9
                )
                response = client.post(
                    "/plants/piemonte/forecast",
                    json={"day": day.isoformat(), "issued_at": issued.isoformat()},
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert (body["model"], body["version"], body["logged"]) == ("pv-piemonte", 1, 24)
                power = [h["power_kw"] for h in body["hours"]]
                assert len(power) == 24 and all(0.0 <= p <= 1000.0 for p in power)
                assert power[0] == 0.0 and max(power) > 50.0  # midnight UTC is dark; the day is not
        wait_for(lambda: monitor.stats.predictions == 72, "72 logged PV predictions in the monitor's store")

        assert load("deliver_actuals").deliver("piemonte", days[0], days[-1]) == 72
        wait_for(lambda: monitor.stats.actuals == 72, "72 PV actuals in the monitor's store")
    assert monitor.stats.rejected == 0, monitor.last_rejections

    as_of = datetime(2023, 10, 4, 23, tzinfo=UTC)
    report = performance(monitor.store, "pv-piemonte", as_of, "7D", capacity=1000.0)
    assert report.n == 72 and report.versions == [1]
    assert report.overall["nmae"] < 0.15, report.overall  # a forecast, not noise
    result = monitor.monitor.evaluate("pv-piemonte", as_of)
    assert result.version == 1 and max(r.n for r in result.performance.values()) > 0


def test_wind_power_service_end_to_end(tmp_path: Path, settings: Settings, monitor: MonitorService) -> None:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)  # the server stamps issued_at with "now"
    with example("wind_power", tmp_path) as load:
        load("history").main([])
        folder = tmp_path / "wind_power"
        baseline = train(folder / "baseline.yaml")
        assert (baseline["name"], baseline["version"]) == ("wind-appennino", 1)
        maestrale("models", "alias", "wind-appennino", "champion", "1", "--reason", "physics only")

        # the models are plain scikit-learn: they load without the example's code or trusted_types
        turbine = load("turbine")
        loaded = Registry().load("wind-appennino:1")
        assert type(loaded).__module__.startswith("sklearn.")

        forecast = load("forecast")
        with TestClient(load("service").create_app(reload_poll_s=0.2)) as client:
            first = forecast.forecast(client, "appennino", tomorrow)
            assert first["version"] == 1 and len(first["hours"]) == 24
            assert all(0.0 <= h["power_mw"] <= 42.0 for h in first["hours"])

            corrected = train(folder / "train.yaml")
            assert corrected["version"] == 2
            assert corrected["metrics"]["nmae"] < baseline["metrics"]["nmae"], (corrected, baseline)
            maestrale("models", "alias", "wind-appennino", "champion", "2", "--reason", "lower holdout nMAE")

            # the server follows the alias: the promotion is served without a restart
            wait_for(
                lambda: forecast.forecast(client, "appennino", tomorrow)["version"] == 2,
                "the model server to serve wind-appennino:2 after the promotion",
                every=0.25,  # each try is a logged request
            )
            second = forecast.forecast(client, "appennino", tomorrow + timedelta(days=1))
            assert second["version"] == 2
        wait_for(lambda: monitor.stats.predictions >= 72, "the server's logged predictions in the monitor")

        # the SCADA export of those two days, delivered once they are over
        assert load("deliver_actuals").deliver("appennino", tomorrow, tomorrow + timedelta(days=1)) == 48
        wait_for(lambda: monitor.stats.actuals == 48, "48 wind actuals in the monitor's store")
        assert turbine.FEATURES == ["wind_speed", "wind_direction", "air_density"]
    assert monitor.stats.rejected == 0, monitor.last_rejections

    as_of = datetime.combine(tomorrow + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=23)
    report = performance(monitor.store, "wind-appennino", as_of, "7D", capacity=42.0)
    assert report.n >= 48 and report.versions == [1, 2]
    v2 = performance(monitor.store, "wind-appennino", as_of, "7D", version=2, capacity=42.0)
    assert v2.n >= 24 and v2.overall["nmae"] < 0.25, v2.overall
    result = monitor.monitor.evaluate("wind-appennino", as_of)
    assert result.version == 2 and max(r.n for r in result.performance.values()) > 0
