"""The world ``bench/ui.py`` measures Maestrale's web UI on: 1,000 models x 20 versions, 1M predictions.

Seeded once through the public Python APIs into a PostgreSQL database (dropped and created) and a
local artifact folder, then cached: a manifest in the world folder records what was seeded, and a
rerun whose manifest matches (and whose database still holds the versions) skips seeding::

    from _ui_world import ensure_world
    world = ensure_world(Path("/work/bench-out/ui-world"), "maestrale_bench_ui")
    world["database_url"], world["token_file"], world["pages"]["model"]

What is in it
-------------
* ``pv-nrel-50``, the monitored model: version 1 trained by the real trainer
  (``maestrale.training.trainer.train``) on NREL system 50's first year with a 20% capacity loss
  injected from 2012-07-02 (``maestrale.demo.scenario``), so the year has breaches; versions 2-20
  re-register that fitted pipeline with the record of v1 (params, spec, profile, lineage) varied as
  a retraining history would (parent version, reason, train window); the champion is v20. A year of
  hourly day-ahead predictions (2012-04-01 -> 2013-04-01, 8,760) with their inputs and actuals, and
  the real monitor's backfill (``Monitor.backfill``, the default policy): one evaluation per day.
* 999 fleet models ``pv-it-0001`` ..: 20 versions each of a tiny scikit-learn Ridge (the same bytes,
  so one stored object, but every version a real, loadable version), each with realistic params,
  metrics (nMAE, RMSE, skill, the baselines'), tags (site, region, target), spec and the training
  profile of the NREL model (37 KB: the size a trained version carries). Champion moved
  v17 -> v18 -> v19 -> v20 with reasons (the alias audit trail); one in ten keeps v19 as champion and
  has v20 as ``challenger``. Each logs ~992 hourly predictions with actuals (the NREL year scaled
  per plant, one in 17 with a 30% shortfall in its last 10 days), 1M predictions in all; one
  monitor tick then evaluates every model once (the fleet page's latest nMAE, skill, episodes).
* model tags (site, region, kind, target) on every model, as on MLflow's side; a read token
  (``token_file``) for the UI's sign-in.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

WORLD_VERSION = 1  # bump when the seeding changes: a cache of another version is seeded again
N_MODELS = 1_000
N_VERSIONS = 20
N_PREDICTIONS = 1_000_000
MONITORED = "pv-nrel-50"
YEAR_START = datetime(2012, 4, 1, tzinfo=UTC)
YEAR_END = datetime(2013, 4, 1, tzinfo=UTC)
FAULT_START = "2012-07-02"
REGIONS = ["Puglia", "Sicilia", "Sardegna", "Lazio", "Piemonte", "Veneto", "Toscana", "Campania"]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SEED = 20261205
KEEP = ("n_", "persistence", "climatology")  # metrics that do not scale with a plant's nMAE
REASONS = ["shortfall breach", "skill breach", "scheduled refit"]


def log(msg: str) -> None:
    print(f"[world] {msg}", file=sys.stderr, flush=True)


def fleet_name(i: int) -> str:
    return f"pv-it-{i:04d}"


def pages(n_models: int) -> dict[str, Any]:
    """The models each page is measured on (chosen once, so both sides and reruns agree)."""
    mid = fleet_name(n_models // 2)
    return {
        "model": mid,
        "version": (MONITORED, 1),  # the version the trainer registered: profile, holdout, spec
        "compare": [(MONITORED, v) for v in range(11, 21)],  # 10 versions of one model
        "compare_fleet": [(fleet_name(i), N_VERSIONS) for i in range(1, 11)],  # a fleet sweep
        "monitoring": MONITORED,
    }


def ensure_world(
    folder: Path, database: str, *, n_models: int = N_MODELS, reseed: bool = False
) -> dict[str, Any]:
    """The seeded world's manifest; seeds it first when the cache is missing, stale or `reseed`."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    want = {"world_version": WORLD_VERSION, "n_models": n_models, "database_url": url}
    if manifest_path.exists() and not reseed:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if all(manifest.get(k) == v for k, v in want.items()) and _versions_in(url) == manifest["versions"]:
            log(f"cached world in {folder} (seeded in {manifest['seed_s']:.0f} s): seeding skipped")
            if "model_tags_s" not in manifest:  # a cache from before the model tags: add them only
                manifest["model_tags_s"] = tag_models(url, manifest["storage_url"], n_models)
                manifest_path.write_text(json.dumps(manifest, indent=1))
            return manifest
        log("cached world does not match (version, size or database): seeding again")
    manifest_path.unlink(missing_ok=True)
    manifest = {**want, **seed(folder, url, database, n_models)}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def _versions_in(url: str) -> int | None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM versions")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def recreate_database(database: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()


def seed(folder: Path, url: str, database: str, n_models: int) -> dict[str, Any]:
    """Seed everything; returns the figures for the manifest (counts and seconds per step)."""
    import shutil

    from maestrale import Registry
    from maestrale.monitoring.store import MonitorStore
    from maestrale.tokens import create_token

    t_all = time.perf_counter()
    recreate_database(database)
    shutil.rmtree(folder / "artifacts", ignore_errors=True)
    storage = (folder / "artifacts").resolve().as_uri()
    reg = Registry(database_url=url, storage_url=storage, actor="bench-seed")
    store = MonitorStore(url)
    steps: dict[str, float] = {}

    t0 = time.perf_counter()
    nrel = monitored_model(reg, folder)
    steps["train_and_register_monitored_s"] = time.perf_counter() - t0
    log(
        f"{MONITORED}: trained v1, registered v2-v{N_VERSIONS} "
        f"in {steps['train_and_register_monitored_s']:.0f} s"
    )

    t0 = time.perf_counter()
    register_fleet(reg, nrel, n_models)
    steps["register_fleet_s"] = time.perf_counter() - t0
    n_fleet_versions = (n_models - 1) * N_VERSIONS
    log(
        f"fleet: {n_fleet_versions} versions in {steps['register_fleet_s']:.0f} s "
        f"({steps['register_fleet_s'] * 1000 / max(n_fleet_versions, 1):.1f} ms per version, "
        "aliases included)"
    )

    t0 = time.perf_counter()
    n_pred = log_year(store, nrel) + log_fleet(store, nrel, n_models)
    steps["log_predictions_s"] = time.perf_counter() - t0
    log(f"logged {n_pred} predictions with actuals in {steps['log_predictions_s']:.0f} s")

    t0 = time.perf_counter()
    evaluations = run_monitor(store, url, storage)
    steps["monitor_s"] = time.perf_counter() - t0
    log(f"monitor: {evaluations} evaluations in {steps['monitor_s']:.0f} s")

    model_tags_s = tag_models(url, storage, n_models)

    token_file = folder / "reader.token"
    token_file.write_text(
        create_token(url, f"bench-ui-{int(time.time())}", "read", created_by="bench") + "\n"
    )
    token_file.chmod(0o600)
    seconds = time.perf_counter() - t_all
    log(f"seeded in {seconds:.0f} s")
    return {
        "storage_url": storage,
        "token_file": str(token_file),
        "versions": _versions_in(url),
        "predictions": n_pred,
        "evaluations": evaluations,
        "pages": pages(n_models),
        "seed_s": round(seconds, 1),
        "model_tags_s": model_tags_s,
        "steps_s": {k: round(v, 1) for k, v in steps.items()},
        "seeded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- the monitored model ------------------------------------------------------------------------------
def monitored_model(reg: Any, folder: Path) -> dict[str, Any]:
    """Train v1 with the real trainer, register v2..v20 from it; returns the world's series and record."""
    from datetime import date

    import pandas as pd

    from maestrale.demo.scenario import REPLAY_START, WEATHER, DataLake, build_scenario, initial_spec
    from maestrale.training.spec import TrainingSpec
    from maestrale.training.trainer import train

    scenario = build_scenario(date.fromisoformat(FAULT_START), 0.2)
    lake = DataLake(folder / "lake" / "nrel-50.parquet", scenario)
    lake.deliver_until(pd.Timestamp(REPLAY_START, tz="UTC"))
    result = train(
        TrainingSpec.model_validate(initial_spec(lake.uri, scenario.capacity)), reg, reason="first"
    )
    v1 = reg.get_version(result.ref)
    model = reg.load(result.ref)
    frame = scenario.frame.loc[(scenario.frame.index >= YEAR_START) & (scenario.frame.index < YEAR_END)]
    inputs = frame[WEATHER]
    example = inputs.iloc[:3].reset_index()
    rng = np.random.default_rng(SEED)
    for v in range(2, N_VERSIONS + 1):
        last = v == N_VERSIONS  # the champion keeps v1's figures: the monitor's ratio-to-training reads them
        jitter = 1.0 if last else float(rng.uniform(0.9, 1.15))
        spec = dict(v1.spec or {})
        spec["params"] = {**spec.get("params", {}), "learning_rate": round(0.05 * jitter, 4)}
        spec["train_window"] = {"start": f"2011-{4 + v % 8:02d}-15", "end": "2012-03-31"}
        reg.register(
            MONITORED, model, params={**v1.params, "learning_rate": spec["params"]["learning_rate"]},
            metrics={k: float(x) * (1.0 if k.startswith("n_") else jitter) for k, x in v1.metrics.items()},
            tags={**v1.tags, "trigger": "shortfall" if v % 3 else "skill"}, input_example=example,
            description=v1.description, data_fingerprint=v1.data_fingerprint, spec=spec, profile=v1.profile,
            lineage=[x if isinstance(x, dict) else x.model_dump() for x in v1.lineage], parent_version=v - 1,
            reason=f"retraining after a {'shortfall' if v % 3 else 'skill'} breach (episode {v - 1})",
        )  # fmt: skip
    reg.set_alias(MONITORED, "champion", N_VERSIONS, reason="bench: the latest retraining")
    return {
        "model": model,
        "inputs": inputs,
        "prediction": np.asarray(model.predict(inputs), dtype=float),
        "actual": frame["power_kw"].to_numpy(dtype=float),
        # the fleet's plants have no fault of their own but this one's (one in 17, see log_fleet)
        "clean": build_scenario(None, 0.0).frame["power_kw"].reindex(frame.index).to_numpy(dtype=float),
        "capacity": float(scenario.capacity),
        "record": v1,
    }


def log_year(store: Any, nrel: dict[str, Any]) -> int:
    """A year of the monitored model's day-ahead forecasts (issued at noon the day before) and actuals."""
    import pandas as pd

    from maestrale.monitoring.client import log_actuals, log_predictions

    frame = nrel["inputs"].copy()
    frame["prediction"] = nrel["prediction"]
    frame["issued_at"] = frame.index.normalize() - pd.Timedelta(hours=12)
    res = log_predictions(frame, model=MONITORED, version=N_VERSIONS, entity="nrel-50", store=store)
    actual = pd.Series(nrel["actual"], index=frame.index, name="value")
    log_actuals(actual.dropna(), entity="nrel-50", store=store)
    return int(res.stored)


# -- the fleet ----------------------------------------------------------------------------------------
def register_fleet(reg: Any, nrel: dict[str, Any], n_models: int) -> None:
    """999 models x 20 versions of one tiny Ridge (one stored object), each with a full record."""
    from sklearn.linear_model import Ridge

    inputs = nrel["inputs"].iloc[:200]
    ridge = Ridge(alpha=1.0).fit(inputs, nrel["actual"][:200])
    base = nrel["record"]
    rng = np.random.default_rng(SEED + 1)
    t0 = time.perf_counter()
    for i in range(1, n_models):
        name = fleet_name(i)
        region = REGIONS[i % len(REGIONS)]
        capacity = round(nrel["capacity"] * plant_scale(i), 3)  # the scale of its logged series
        quality = float(rng.uniform(0.85, 1.3))  # some plants are harder to forecast
        for v in range(1, N_VERSIONS + 1):
            lr = round(float(rng.choice([0.03, 0.05, 0.08, 0.1])), 3)
            max_iter = int(rng.choice([100, 200, 300, 500]))
            nmae = 0.045 * quality * float(rng.uniform(0.9, 1.1))  # March's ~0.056 stays < 1.5x
            metrics = {
                k: float(x) * (1.0 if k.startswith(KEEP) else nmae / 0.0273) for k, x in base.metrics.items()
            }
            metrics["nmae"], metrics["skill"] = nmae, 1.0 - nmae / metrics["persistence_nmae"]
            tags = {"site": f"it-{i:04d}", "region": region, "target": "power_kw", "kind": "pv"}
            spec = {
                **(base.spec or {}),
                "name": name,
                "capacity": capacity,
                "params": {"max_iter": max_iter, "learning_rate": lr, "random_state": v},
                "tags": {k: tags[k] for k in ("site", "target", "region")},
                "data": {"uri": f"s3://lake/plants/it-{i:04d}.parquet"},
            }
            params = {"estimator": "hgb", "learning_rate": lr, "max_iter": max_iter, "random_state": v}
            reg.register(
                name,
                ridge,
                params={**params, "features": base.params.get("features", "")},
                metrics=metrics,
                tags=tags,
                input_example=inputs.iloc[:3],
                description=f"Day-ahead PV forecast, plant it-{i:04d} ({region})",
                data_fingerprint=f"sha256:{rng.bytes(32).hex()}",
                data_version=f"dvc:{rng.bytes(4).hex()}",
                spec=spec,
                profile=base.profile,
                parent_version=v - 1 if v > 1 else None,
                reason=None if v == 1 else str(rng.choice(REASONS)),
                duration_s=round(float(rng.uniform(5, 40)), 1),
            )
        challenger = i % 10 == 0
        for v in range(17, N_VERSIONS + (0 if challenger else 1)):
            reg.set_alias(name, "champion", v, reason=f"v{v} beat v{v - 1} out of sample")
        if challenger:
            reg.set_alias(name, "challenger", N_VERSIONS, reason="retrained after a shortfall breach")
        if i % 100 == 0:
            done = i * N_VERSIONS
            per_version = (time.perf_counter() - t0) * 1000 / done
            log(f"  {i} models, {done} versions, {per_version:.1f} ms per version")


def plant_scale(i: int) -> float:
    """Plant `i`'s size relative to NREL system 50 (0.5-3x), the same at registration and logging."""
    return 0.5 + 2.5 * ((i * 0.6180339887) % 1.0)


def tag_models(url: str, storage: str, n_models: int) -> float:
    """Model tags (site, region, kind, target) on every model, as MLflow's registered models have."""
    from maestrale import Registry

    reg = Registry(database_url=url, storage_url=storage, actor="bench-seed")
    t0 = time.perf_counter()
    for i in range(n_models):
        name, site = (MONITORED, "nrel-50") if i == 0 else (fleet_name(i), f"it-{i:04d}")
        region = "Colorado" if i == 0 else REGIONS[i % len(REGIONS)]
        for key, value in (("site", site), ("region", region), ("kind", "pv"), ("target", "power_kw")):
            reg.set_tag(name, key, value)
    seconds = round(time.perf_counter() - t0, 1)
    log(f"model tags on {n_models} models in {seconds:.0f} s")
    return seconds


def champion_of(i: int) -> int:
    return N_VERSIONS - 1 if i % 10 == 0 else N_VERSIONS


def log_fleet(store: Any, nrel: dict[str, Any], n_models: int) -> int:
    """~992 hourly predictions per fleet model (the NREL year scaled per plant), and their actuals."""
    import pandas as pd

    from maestrale.monitoring.client import log_actuals, log_predictions

    per_model = -(-(N_PREDICTIONS - len(nrel["prediction"])) // (n_models - 1))
    inputs = nrel["inputs"].iloc[-per_model:]
    pred, actual = nrel["prediction"][-per_model:], nrel["clean"][-per_model:]
    rng = np.random.default_rng(SEED + 2)
    fault_from = len(inputs) - 240
    total = 0
    for i in range(1, n_models):
        scale = plant_scale(i)
        frame = inputs * np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.95, 1.05)])
        frame["prediction"] = pred * scale
        frame["issued_at"] = frame.index.normalize() - pd.Timedelta(hours=12)
        entity = f"it-{i:04d}"
        res = log_predictions(frame, model=fleet_name(i), version=champion_of(i), entity=entity, store=store)
        total += int(res.stored)
        values = actual * scale * rng.normal(1.0, 0.05, len(actual)).clip(0.7, 1.3)
        if i % 17 == 0:
            values[fault_from:] *= 0.7
        log_actuals(pd.Series(values, index=inputs.index).dropna(), entity=entity, store=store)
        if i % 200 == 0:
            log(f"  logged {i} fleet models, {total} predictions")
    return total


def run_monitor(store: Any, url: str, storage: str) -> int:
    """The monitored model's year backfilled (one evaluation a day), then one tick over the fleet."""
    from maestrale import Registry
    from maestrale.monitoring.monitor import Monitor
    from maestrale.monitoring.policy import default_policy

    registry = Registry(database_url=url, storage_url=storage, actor="monitor")
    monitor = Monitor(store, registry, None, [default_policy()])
    t0 = time.perf_counter()
    year = monitor.backfill(MONITORED, YEAR_START + timedelta(days=7), YEAR_END)
    log(f"{MONITORED}: {len(year)} daily evaluations in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    fleet = monitor.tick()
    log(f"fleet tick: {len(fleet)} models evaluated in {time.perf_counter() - t0:.0f} s")
    return len(year) + len(fleet)
