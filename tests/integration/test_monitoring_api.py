"""The monitoring REST API over real HTTP, on SQLite and PostgreSQL.

Covers per-record ingest (valid records of a mixed batch stored, each bad one named with its
reason), idempotent resends, actuals arriving after their predictions, the audit trail after a real
`Monitor.evaluate` on the server's database, the Prometheus gauges, policy validation and scopes.

The scenario is synthetic but exact: power = 2·ghi + temp + noise on a 3 kW plant, a champion
trained on a target shifted by +0.5 kW (so production nMAE ≈ 0.5 / 3 is far above its registered
0.02 and its bias breaks the nbias bound), and a challenger trained on the right target.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression

from maestrale import Registry
from maestrale.monitoring.ingest import MAX_BATCH
from maestrale.monitoring.monitor import Monitor
from maestrale.monitoring.policy import load_policy
from maestrale.monitoring.store import MonitorStore
from maestrale.tokens import create_token
from tests.conftest import start_server

CAPACITY = 3.0
T0 = datetime(2012, 6, 1, tzinfo=UTC)
LEAD = timedelta(hours=24)
DAYS = 8
API = "/api/v1/monitoring"
POLICY = """
name: api-test
models: ["mon-*"]
conditions:
  - {name: accuracy, metric: nmae, window: 7D, ratio_to_training: 1.3, min_samples: 48}
  - {name: bias, metric: nbias, window: 3D, abs_above: 0.04, min_samples: 24}
  - {name: input-drift, drift: psi, window: 7D, above: 5.0, min_samples: 48, actions: [breach]}
actions: [breach]
promotion: {min_samples: 24, margin: 0.05}
"""


@dataclass
class Env:
    """A running server, its database, a fresh model name and tokens of each scope."""

    url: str
    db: str
    home: Path
    model: str
    entity: str
    write: dict[str, str]
    read: dict[str, str]

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        # json.dumps, not httpx's json=: it writes NaN, which a buggy client would send
        return httpx.post(
            f"{self.url}{API}{path}",
            content=json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or self.write)},
            timeout=60,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{API}{path}", params=params, headers=self.read, timeout=60)


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    home = tmp_path / "home"
    # PostgreSQL's database is shared by the session: model, entity and token names are unique
    db = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{home}/registry.db"
    handle = start_server(home, database_url=db)
    suffix = uuid.uuid4().hex[:8]
    writer = create_token(db, f"writer-{suffix}", "write")
    reader = create_token(db, f"reader-{suffix}", "read")
    try:
        yield Env(
            handle.url, db, home, f"mon-{suffix}", f"site-{suffix}",
            {"Authorization": f"Bearer {writer}"}, {"Authorization": f"Bearer {reader}"},
        )  # fmt: skip
    finally:
        handle.stop()


def _iso(t: pd.Timestamp | datetime) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def scenario(days: int = DAYS, seed: int = 3) -> pd.DataFrame:
    """Hourly target times from T0 with features ghi, temp and the measured power."""
    rng = np.random.default_rng(seed)
    n = days * 24
    frame = pd.DataFrame(
        {"ghi": rng.uniform(0, 1, n), "temp": rng.uniform(0, 1, n)},
        index=pd.date_range(T0, periods=n, freq="h", name="target_time"),
    )
    frame["power"] = 2 * frame["ghi"] + frame["temp"] + rng.normal(0, 0.05, n)
    return frame


def prediction_records(frame: pd.DataFrame, prediction: np.ndarray, entity: str) -> list[dict]:
    """One record per row, issued a day ahead; record ids are stable, so a resend is a duplicate."""
    return [
        {
            "record_id": f"{entity}/{_iso(t)}",
            "entity": entity,
            "issued_at": _iso(t - LEAD),
            "target_time": _iso(t),
            "features": {"ghi": float(row.ghi), "temp": float(row.temp)},
            "prediction": float(p),
        }
        for (t, row), p in zip(frame.iterrows(), prediction, strict=True)
    ]


def actual_records(frame: pd.DataFrame, entity: str) -> list[dict]:
    return [{"entity": entity, "target_time": _iso(t), "value": float(v)} for t, v in frame["power"].items()]


# -- ingest ---------------------------------------------------------------------------------------
def test_mixed_batch_stores_the_valid_records_and_names_the_bad_ones(env: Env):
    frame = scenario(days=1)
    good = prediction_records(frame, frame["power"].to_numpy(), env.entity)
    naive = {**good[0], "record_id": "naive", "issued_at": "2012-05-31T00:00:00"}
    nan = {**good[1], "record_id": "nan", "prediction": math.nan}
    repeated = {**good[2]}  # same record id as an earlier record of the batch
    no_entity = {k: v for k, v in good[3].items() if k != "entity"} | {"record_id": "no-entity"}
    body = {"model": env.model, "version": 1, "records": [*good, naive, nan, repeated, no_entity]}

    r = env.post("/predictions", body)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["stored"] == 24 and result["duplicates"] == 0
    rejected = {x["index"]: x for x in result["rejected"]}
    assert sorted(rejected) == [24, 25, 26, 27]
    assert rejected[24]["record_id"] == "naive" and "time zone" in rejected[24]["reason"]
    assert rejected[25]["record_id"] == "nan" and "finite" in rejected[25]["reason"]
    assert rejected[26]["record_id"] == good[2]["record_id"] and "repeats" in rejected[26]["reason"]
    assert "entity" in rejected[27]["reason"]

    # a redelivered batch stores nothing twice
    again = env.post("/predictions", body).json()
    assert again["stored"] == 0 and again["duplicates"] == 24 and len(again["rejected"]) == 4
    store = MonitorStore(env.db)
    logged = store.logged(env.model, T0 - LEAD, T0 + timedelta(days=2))
    assert len(logged) == 24 and logged["prediction"].tolist() == pytest.approx(frame["power"].tolist())

    # actuals: a later value for the same entity and time replaces the first
    r = env.post(
        "/actuals", {"records": [*actual_records(frame, env.entity), {"entity": env.entity, "value": 1.0}]}
    )
    assert r.status_code == 200 and r.json()["stored"] == 24
    assert r.json()["rejected"][0]["index"] == 24 and "target_time" in r.json()["rejected"][0]["reason"]
    fix = {"entity": env.entity, "target_time": _iso(frame.index[0]), "value": 9.5}
    assert env.post("/actuals", {"records": [fix]}).json()["stored"] == 1
    actuals = store.actual_series([env.entity], T0, T0 + timedelta(days=1))
    assert len(actuals) == 24 and actuals.sort_values("target_time")["value"].iloc[0] == 9.5


def test_batch_limits_and_malformed_bodies(env: Env):
    r = env.post("/predictions", {"model": env.model, "version": 1, "records": [{}] * (MAX_BATCH + 1)})
    assert r.status_code == 413 and f"at most {MAX_BATCH}" in r.json()["error"]["message"]
    r = env.post("/predictions", {"model": env.model, "version": 1})
    assert r.status_code == 400 and "records" in r.json()["error"]["message"]
    r = env.post("/actuals", {"records": "not a list"})
    assert r.status_code == 400
    r = env.post("/predictions", {"model": env.model, "version": 0, "records": []})
    assert r.status_code == 400 and "version" in r.json()["error"]["message"]
    r = env.post("/predictions", {"model": "Bad/Name", "version": 1, "records": []})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_name"
    assert env.get(f"/models/{env.model}/performance").status_code == 404


def test_scopes(env: Env):
    body = {"model": env.model, "version": 1, "records": []}
    r = env.post("/predictions", body, headers=env.read)
    assert r.status_code == 403 and "needs 'predict'" in r.json()["error"]["message"]
    assert env.post("/actuals", {"records": []}, headers=env.read).status_code == 403
    assert httpx.get(f"{env.url}{API}/models").status_code == 401
    assert env.post("/predictions", body).status_code == 200  # the write token may
    assert env.get("/models").status_code == 200  # and the read token may read


# -- late actuals ---------------------------------------------------------------------------------
def test_late_actuals_join_their_predictions(env: Env):
    frame = scenario(days=2)
    pred = (frame["power"] + 0.2).to_numpy()
    body = {"model": env.model, "version": 1, "records": prediction_records(frame, pred, env.entity)}
    assert env.post("/predictions", body).json()["stored"] == 48
    as_of = _iso(frame.index[-1])
    live = {"live": "true", "window": "7D", "as_of": as_of}
    before = env.get(f"/models/{env.model}/performance", **live).json()
    assert before["live"] and before["items"][0]["n"] == 0

    first_day = frame.iloc[:24]  # the meter data of day one lands a day later
    assert env.post("/actuals", {"records": actual_records(first_day, env.entity)}).json()["stored"] == 24
    after = env.get(f"/models/{env.model}/performance", **live).json()["items"][0]
    assert after["n"] == 24 and after["version"] == 1
    assert after["values"]["overall"]["mae"] == pytest.approx(0.2)
    assert after["values"]["overall"]["bias"] == pytest.approx(0.2)

    assert (
        env.post("/actuals", {"records": actual_records(frame.iloc[24:], env.entity)}).json()["stored"] == 24
    )
    after = env.get(f"/models/{env.model}/performance", **live).json()["items"][0]
    assert after["n"] == 48 and after["values"]["overall"]["n_skill"] == 24  # persistence from day 2
    # without as_of the live figure ends at the monitor's clock: the latest target with an actual
    clock = env.get(f"/models/{env.model}/performance", live="true").json()["items"][0]
    assert clock["n"] == 48 and datetime.fromisoformat(clock["as_of"]) == frame.index[-1]

    naive = env.get(f"/models/{env.model}/performance", live="true", as_of="2012-06-02T00:00:00")
    assert naive.status_code == 400 and "timezone" in naive.json()["error"]["message"]
    assert env.get(f"/models/{env.model}/performance", as_of=as_of).status_code == 400  # needs live
    bad = env.get(f"/models/{env.model}/performance", window="soon")
    assert bad.status_code == 400 and "not a window" in bad.json()["error"]["message"]
    (status,) = env.get("/models", name=env.model).json()
    assert status["serving_version"] == 1 and status["as_of"] is None and status["breaches_total"] == 0


# -- evaluation, audit trail, metrics ---------------------------------------------------------------
def _register(reg: Registry, model: str, frame: pd.DataFrame, shift: float) -> int:
    """A linear model of power (plus `shift`) on ghi and temp, with its holdout figures and profile."""
    from maestrale.stats.profile import reference_profile

    X = frame[["ghi", "temp"]]
    fitted = LinearRegression().fit(X, frame["power"] + shift)
    mv = reg.register(
        model, fitted, input_example=X.head(), spec={"capacity": CAPACITY},
        metrics={"nmae": 0.02, "mae": 0.06, "rmse": 0.075},
        profile=reference_profile(X, fitted.predict(X)),
    )  # fmt: skip
    return mv.version


def test_evaluation_breaches_decisions_and_prometheus(env: Env):
    train = scenario(days=20, seed=11)
    live = scenario()
    reg = Registry(database_url=env.db, storage_url=(env.home / "artifacts").as_uri())
    champion = _register(reg, env.model, train, shift=0.5)
    challenger = _register(reg, env.model, train, shift=0.0)
    assert (champion, challenger) == (1, 2)
    champ_pred = reg.load(f"{env.model}:1").predict(live[["ghi", "temp"]])
    body = {"model": env.model, "version": 1, "records": prediction_records(live, champ_pred, env.entity)}
    assert env.post("/predictions", body).json()["stored"] == DAYS * 24
    assert env.post("/actuals", {"records": actual_records(live, env.entity)}).json()["stored"] == DAYS * 24

    # a retraining finished three days before the clock: version 2 is the challenger since then
    store = MonitorStore(env.db)
    since = live.index[-72].to_pydatetime() - timedelta(hours=1)
    reg.set_alias(env.model, "challenger", 2, reason="retrained")
    with store._writer.begin() as conn:
        store.set_state(conn, env.model, challenger_since=since)
    as_of = store.data_time(env.model)
    assert as_of == live.index[-1]
    result = Monitor(store, reg, None, [load_policy(POLICY)]).evaluate(env.model, as_of)
    assert sorted(b.condition for b in result.breaches) == ["accuracy", "bias"]
    assert result.promoted == 2 and reg.get_version(f"{env.model}@champion").version == 2

    # the audit trail, JSON with ISO times
    breaches = env.get(f"/models/{env.model}/breaches").json()
    assert [b["condition"] for b in breaches] == ["accuracy", "bias"]
    accuracy = breaches[0]
    err = np.abs(champ_pred - live["power"].to_numpy())
    assert accuracy["n"] == 168 and accuracy["version"] == 1 and accuracy["window"] == "7D"
    assert accuracy["value"] == pytest.approx(err[-168:].mean() / CAPACITY, rel=1e-6)
    assert accuracy["threshold"] == pytest.approx(1.3 * 0.02)
    assert datetime.fromisoformat(accuracy["as_of"]) == as_of and accuracy["actions"] == {"breach": True}
    (decision,) = env.get(f"/models/{env.model}/decisions").json()
    assert (decision["champion_version"], decision["challenger_version"]) == (1, 2)
    assert decision["outcome"] == "promoted" and decision["n"] == 72
    assert decision["challenger_metrics"]["nmae"] < 0.5 * decision["champion_metrics"]["nmae"]
    assert datetime.fromisoformat(decision["window_start"]) == since

    # the stored series: one evaluation per policy window
    series = env.get(f"/models/{env.model}/performance").json()
    assert sorted(p["window"] for p in series["items"]) == ["3D", "7D"] and not series["live"]
    seven = env.get(f"/models/{env.model}/performance", window="7D").json()["items"]
    assert len(seven) == 1 and seven[0]["values"]["ratios"]["nmae"] == pytest.approx(
        accuracy["value"] / 0.02, rel=1e-5
    )
    drift = env.get(f"/models/{env.model}/drift", window="7D").json()["items"]
    assert len(drift) == 1 and set(drift[0]["values"]["features"]) == {"ghi", "temp"}

    (status,) = env.get("/models", name=env.model).json()
    assert status["serving_version"] == 2 and status["champion"] == 2 and status["challenger"] is None
    assert status["open_breaches"] == 2 and status["breaches_total"] == 2
    assert status["performance"]["7D"]["n"] == 168 and status["performance"]["7D"]["version"] == 1
    assert datetime.fromisoformat(status["as_of"]) == as_of

    # Prometheus: the latest evaluation as gauges, labelled by model, version and window
    text = httpx.get(f"{env.url}/metrics").text
    assert "maestrale_monitor_metric{" in text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model") == env.model
    }

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({"model": env.model, **labels}.items())))]

    assert sample("maestrale_monitor_metric", version="1", window="7D", metric="nmae") == pytest.approx(
        accuracy["value"]
    )
    assert sample("maestrale_monitor_samples", version="1", window="3D") == 72
    assert sample("maestrale_monitor_ratio_to_training", version="1", window="7D", metric="nmae") > 1.3
    assert sample("maestrale_monitor_drift_psi", version="1", window="7D", feature="ghi") >= 0
    assert sample("maestrale_monitor_breaches_total", condition="bias") == 1
    assert sample("maestrale_monitor_as_of_timestamp_seconds") == as_of.timestamp()
    evaluated = sample("maestrale_monitor_last_evaluation_timestamp_seconds")
    assert abs(evaluated - datetime.now(UTC).timestamp()) < 600


# -- policies -------------------------------------------------------------------------------------
def test_policy_validation(env: Env):
    url = f"{env.url}{API}/policies/validate"
    r = httpx.post(url, content=POLICY, headers={**env.read, "Content-Type": "application/x-yaml"})
    assert r.status_code == 200, r.text
    policy = r.json()
    assert policy["name"] == "api-test" and policy["cooldown"] == "7D"  # defaults filled in
    assert policy["conditions"][0]["min_samples"] == 48 and policy["promotion"]["margin"] == 0.05
    as_json = httpx.post(url, json=policy, headers=env.read)
    assert as_json.status_code == 200 and as_json.json() == policy

    bad = "name: x\nconditions:\n  - {name: a, metric: nmea, above: 1}\n  - {name: b, metric: nmae}\n"
    r = httpx.post(url, content=bad, headers={**env.read, "Content-Type": "text/yaml"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_policy"
    message = r.json()["error"]["message"]
    assert "conditions.0: unknown metric 'nmea'" in message and "conditions.1:" in message
    assert "exactly one threshold" in message
    # a one-line body naming a file is text, never a path on the server
    r = httpx.post(url, content="/etc/policy.yaml", headers={**env.read, "Content-Type": "text/yaml"})
    assert r.status_code == 400 and "mapping" in r.json()["error"]["message"]
    r = httpx.post(url, content="name: [", headers={**env.read, "Content-Type": "text/yaml"})
    assert r.status_code == 400 and "not valid YAML" in r.json()["error"]["message"]


def test_openapi_lists_the_monitoring_endpoints(env: Env):
    spec = httpx.get(f"{env.url}/openapi.json").json()
    for path in ("predictions", "actuals", "models", "models/{name}/performance", "models/{name}/drift",
                 "models/{name}/breaches", "models/{name}/decisions", "policies/validate"):  # fmt: skip
        assert f"{API}/{path}" in spec["paths"], path
    assert spec["paths"][f"{API}/predictions"]["post"]["tags"] == ["monitoring"]
