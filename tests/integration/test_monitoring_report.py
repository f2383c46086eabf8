"""The monitoring report on a real SQLite store and embedded registry, filled by the real Monitor.

Scenario (hourly PV, 3.4 kW): v1 serves; the weather feed's sensors drift on days 5-9 (irradiance
40% high, temperature +10 °C: input drift) and the plant loses 40% of its output from day 6 (accuracy
and bias breaches); v2, retrained on the faulty feed, is promoted on day 8 and sees the repaired feed
of day 10 as drift; v3 is rejected on day 10. Every evaluation comes from `Monitor.evaluate`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from maestrale.cli.main import app
from maestrale.monitoring.monitor import Monitor
from maestrale.monitoring.policy import load_policy
from maestrale.monitoring.report import build_report, write_report
from maestrale.monitoring.store import MonitorStore
from maestrale.stats.metrics import energy_metrics
from maestrale.stats.profile import reference_profile

MODEL = "pv-report"
CAPACITY = 3.4
FEATURES = ["ghi", "temp_air", "hour_sin", "hour_cos"]
DAYS = 12
IMG = '<img src="data:image/png;base64,'
# The test's own policy (not the shipped default, which may be tuned): three conditions, fixed here.
POLICY = """
name: report-test
models: [pv-report]
schedule: {every: 1D}
conditions:
  - {name: accuracy, metric: nmae, window: 7D, ratio_to_training: 1.3, min_samples: 100}
  - {name: bias, metric: nbias, window: 3D, abs_above: 0.04, min_samples: 48}
  - {name: input-drift, drift: psi, window: 7D, above: 0.25, min_share: 0.25, min_samples: 100,
     actions: [breach]}
actions: [breach, retrain]
cooldown: 7D
"""
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def weather(
    times: pd.DatetimeIndex, rng: np.random.Generator, ghi_gain: float = 1.0, temp_offset: float = 0.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Logged features (irradiance with clouds, air temperature, calendar) and the true irradiance."""
    hour = times.hour.to_numpy() + times.minute.to_numpy() / 60
    sun = np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None)
    ghi = 950 * sun * rng.uniform(0.55, 1.0, len(times))
    return pd.DataFrame(
        {
            "ghi": ghi * ghi_gain,
            "temp_air": 17 + 9 * sun + rng.normal(0, 1.5, len(times)) + temp_offset,
            "hour_sin": np.sin(2 * np.pi * hour / 24),
            "hour_cos": np.cos(2 * np.pi * hour / 24),
        },
        index=times,
    ), ghi


def power(ghi: np.ndarray, temp: np.ndarray, rng: np.random.Generator, derate: float = 1.0) -> np.ndarray:
    raw = CAPACITY * ghi / 1000 * (1 - 0.004 * (temp - 25)) * derate + rng.normal(0, 0.03, len(ghi))
    return np.clip(raw, 0, CAPACITY)


def fit_version(registry: Any, X: pd.DataFrame, y: np.ndarray, reason: str) -> int:
    """Fit on all but the last 7 days, score those (holdout metrics), register with a profile."""
    split = len(X) - 7 * 24
    model = LinearRegression().fit(X.iloc[:split], y[:split])
    holdout = np.clip(model.predict(X.iloc[split:]), 0, None)
    metrics = energy_metrics(y[split:], holdout, capacity=CAPACITY)
    metrics["nbias"] = metrics["bias"] / CAPACITY
    profile = reference_profile(X.iloc[:split], model.predict(X.iloc[:split]))
    mv = registry.register(
        MODEL, model, metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        input_example=X.head(5), profile=profile, spec={"capacity": CAPACITY}, reason=reason,
    )  # fmt: skip
    return mv.version


def log_day(store: MonitorStore, registry: Any, version: int, day: pd.Timestamp, rng: np.random.Generator,
            *, drifted: bool, derate: float) -> None:  # fmt: skip
    times = pd.date_range(day, periods=24, freq="1h", tz="UTC")
    X, true_ghi = weather(times, rng, 1.4 if drifted else 1.0, 10.0 if drifted else 0.0)
    model = registry.load(f"{MODEL}:{version}")
    pred = np.clip(model.predict(X), 0, None)
    actual = power(true_ghi, X["temp_air"].to_numpy() - (10.0 if drifted else 0.0), rng, derate)
    iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
    issued = [(t - pd.Timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
    records = [
        {"record_id": f"{MODEL}-{iso[i]}", "entity": "plant-50", "issued_at": issued[i],
         "target_time": iso[i], "features": {c: float(X[c].iloc[i]) for c in FEATURES},
         "prediction": float(pred[i])}
        for i in range(len(times))
    ]  # fmt: skip
    assert store.log_predictions(MODEL, version, records).stored == 24
    store.log_actuals(
        [{"entity": "plant-50", "target_time": iso[i], "value": float(actual[i])} for i in range(24)]
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from maestrale import Registry

    root = tmp_path_factory.mktemp("report")
    db, storage = f"sqlite:///{root}/registry.db", (root / "artifacts").as_uri()
    registry = Registry(database_url=db, storage_url=storage)
    store = MonitorStore(db)
    rng = np.random.default_rng(50)
    # data time ends about now, so the registry's alias moves (wall clock) fall inside the period
    start = pd.Timestamp(datetime.now(UTC)).floor("D") - pd.Timedelta(days=DAYS - 1)
    history = pd.date_range(start - pd.Timedelta(days=35), start, freq="1h", tz="UTC", inclusive="left")
    X, ghi = weather(history, rng)
    v1 = fit_version(registry, X, power(ghi, X["temp_air"].to_numpy(), rng), "initial fit")
    registry.set_alias(MODEL, "champion", v1, reason="first version <b>&</b>")  # escaped in the report
    monitor = Monitor(store, registry, None, [load_policy(POLICY)])
    serving = v1
    for d in range(DAYS):
        day = start + pd.Timedelta(days=d)
        drifted = 5 <= d < 10  # the weather feed's sensors: irradiance 40% high, temperature +10 °C
        derate = 0.6 if d >= 6 else 1.0
        if d == 8:  # retrained on the new normal: challenger, compared, promoted
            recent = pd.date_range(day - pd.Timedelta(days=21), day, freq="1h", tz="UTC", inclusive="left")
            Xr, g = weather(recent, rng, 1.4, 10.0)
            y = power(g, Xr["temp_air"].to_numpy() - 10.0, rng, 0.6)
            v2 = fit_version(registry, Xr, y, "monitor retrain")
            registry.set_alias(MODEL, "challenger", v2, reason="retrained")
            record_decision(
                store, (v1, 0.11), (v2, 0.05), day, "promoted", "nmae 0.05 vs 0.11 (-55%, needs -5%)"
            )
            registry.set_alias(MODEL, "champion", v2, reason="monitor: nmae 0.05 vs 0.11")
            registry.delete_alias(MODEL, "challenger")
            serving = v2
        if d == 10:  # a second retraining that does not beat the champion
            v3 = fit_version(registry, X, power(ghi, X["temp_air"].to_numpy(), rng), "stale data")
            record_decision(
                store, (v2, 0.05), (v3, 0.09), day, "rejected", "nmae 0.09 vs 0.05 (+80%, needs -5%)"
            )
        log_day(store, registry, serving, day, rng, drifted=drifted, derate=derate)
        if d >= 2:
            monitor.evaluate(MODEL, (day + pd.Timedelta(hours=23)).to_pydatetime())
    with store._writer.begin() as conn:  # a breach whose retraining was submitted (no bus here)
        store.add_breach(
            conn, model=MODEL, version=v1, policy="default", condition="accuracy", metric="nmae", value=0.2,
            threshold=0.1, window="7D", n=168, as_of=(start + pd.Timedelta(days=7, hours=23)).to_pydatetime(),
            actions={"breach": True, "retrain": "req-42"}, details={"description": "manual"},
        )  # fmt: skip
    return {"root": root, "db": db, "storage": storage, "registry": registry, "store": store}


def record_decision(store: MonitorStore, champion: tuple[int, float], challenger: tuple[int, float],
                    day: pd.Timestamp, outcome: str, reason: str) -> None:  # fmt: skip
    """What the monitor's champion/challenger step records: (version, out-of-sample nMAE) of each."""
    as_of = (day - pd.Timedelta(hours=1)).to_pydatetime()
    with store._writer.begin() as conn:
        store.add_decision(
            conn, model=MODEL, champion_version=champion[0], challenger_version=challenger[0],
            outcome=outcome, reason=reason, metric="nmae", margin=0.05,
            window_start=as_of - timedelta(days=3), window_end=as_of, n=72, as_of=as_of,
            champion_metrics={"nmae": champion[1]}, challenger_metrics={"nmae": challenger[1]},
        )  # fmt: skip


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


def test_scenario_recorded_what_the_report_shows(scenario):
    store = scenario["store"]
    conditions = {b["condition"] for b in store.breaches(MODEL)}
    assert {"accuracy", "bias", "input-drift"} <= conditions
    assert [e["version"] for e in store.series(MODEL, kind="performance", window="7D")][-1] == 2
    drift = store.series(MODEL, kind="drift")
    assert drift and all("stats" in e["values"] for e in drift)


def test_report_has_every_section_plotted_and_the_audit_trail(scenario, tmp_path):
    path = write_report(scenario["store"], scenario["registry"], MODEL, tmp_path / "r.html", title="PV <50>")
    text = path.read_text(encoding="utf-8")
    # performance, forecast vs actual, drift heatmap, event timeline
    assert text.count(IMG) == 4
    for condition in ("accuracy", "bias", "input-drift"):
        assert f"<td>{condition}</td>" in text
    assert ">promoted</span>" in text and ">rejected</span>" in text
    assert "v1 vs v2" in text and "v2 vs v3" in text and "<td>nmae=0.09</td>" in text
    assert "retrain: req-42" in text and "retraining is off in this monitor" in text
    assert 'class="hot"' in text  # a PSI above 0.25 in the latest drift table (ghi shifted 40%)
    assert "<td>ghi</td>" in text and "&lt;predictions&gt;" in text
    # user text is escaped, never markup
    assert "<title>PV &lt;50&gt;</title>" in text and "first version &lt;b&gt;&amp;&lt;/b&gt;" in text
    assert "<b>&</b>" not in text
    # self-contained: no scripts, no resources fetched from anywhere
    assert not EXTERNAL.search(text) and "<script" not in text.lower() and "<link" not in text.lower()
    assert "no drift evaluations" not in text and "no performance evaluations" not in text
    # alerts are episodes, one table row each; every breach stays in the folded audit trail
    episodes = scenario["store"].episodes(MODEL)
    breaches = scenario["store"].breaches(MODEL)
    assert 0 < len(episodes) < len(breaches)
    table = text.split("<h3>Alert episodes</h3>", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr") == len(episodes) + 1  # + the header row
    assert f"<summary>all {len(breaches)} breaches</summary>" in text


def test_window_keeps_one_window_and_matches_it_as_a_duration(scenario):
    text = build_report(scenario["store"], scenario["registry"], MODEL, window="168h")
    assert text.count(IMG) == 4
    latest = text.split("Latest evaluation per window", 1)[1].split("</table>", 1)[0]
    assert "<td>7D</td>" in latest and "<td>3D</td>" not in latest  # the 3D bias window is left out
    empty = build_report(scenario["store"], scenario["registry"], MODEL, window="2D")
    assert "no performance evaluations over 2D yet" in empty and "no drift evaluations over 2D yet" in empty


def test_model_without_data_gets_a_report_saying_so(scenario, tmp_path):
    text = write_report(
        scenario["store"], scenario["registry"], "pv-unknown", tmp_path / "e.html"
    ).read_text()
    assert text.count(IMG) == 0
    for missing in ("no performance evaluations yet", "no scored predictions yet", "no drift evaluations yet",
                    "no breaches, decisions or alias moves yet", "model not registered",
                    "no predictions logged yet"):  # fmt: skip
        assert missing in text
    assert text.rstrip().endswith("</html>")


def test_missing_matplotlib_names_the_extra(scenario, monkeypatch, tmp_path):
    from maestrale.errors import MaestraleError

    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(ImportError, match=r"pip install 'maestrale\[plot\]'") as info:
        build_report(scenario["store"], scenario["registry"], MODEL)
    assert isinstance(info.value, MaestraleError)  # the CLI prints it as `error: …`, no traceback
    env = {"MAESTRALE_DATABASE_URL": scenario["db"], "MAESTRALE_STORAGE_URL": scenario["storage"]}
    result = CliRunner().invoke(app, ["report", MODEL, "--out", str(tmp_path / "x.html")], env=env)
    assert result.exit_code == 1 and "pip install 'maestrale[plot]'" in result.stderr
    assert not (tmp_path / "x.html").exists()


def test_cli_writes_the_report(scenario, tmp_path, monkeypatch):
    env = {"MAESTRALE_DATABASE_URL": scenario["db"], "MAESTRALE_STORAGE_URL": scenario["storage"]}
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", MODEL, "--out", str(out), "--window", "7D"], env=env)
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and "decisions" in result.stdout and "4 plots" in result.stdout
    assert out.read_text().count(IMG) == 4
    monkeypatch.chdir(tmp_path)  # the default path is report-NAME.html in the current folder
    result = CliRunner().invoke(app, ["report", "pv-unknown"], env=env)  # a typo: an error, no empty file
    assert result.exit_code == 1, result.output
    assert "neither registered nor monitored" in result.stderr and "maestrale models list" in result.stderr
    assert not (tmp_path / "report-pv-unknown.html").exists()
    status = CliRunner().invoke(app, ["monitor", "status", "pv-unknown"], env=env)
    assert status.exit_code == 1 and "nothing monitored for 'pv-unknown'" in status.stderr
    bad = CliRunner().invoke(app, ["report", MODEL, "--window", "soon"], env=env)
    assert bad.exit_code == 2 and "not a window" in bad.output
