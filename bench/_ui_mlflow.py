"""MLflow's side of ``bench/ui.py``: its server on a SQLite store holding the same 1,000 models x 20 versions.

Stdlib only (REST over ``urllib``): the driver runs in the project venv and starts ``mlflow server``
from ``bench/.venv-mlflow`` (``bench/setup_anchors.sh``). The registry is filled through MLflow's own
REST API, as a client would: ``registered-models/create`` (description, tags); a training run per
model (``runs/create`` in one experiment, ``runs/log-batch`` with params and metrics: MLflow's server
accepts a version's source only inside a run's artifacts); ``model-versions/create`` per version (source
``runs:/<id>/model-v<N>``, description, tags, in the same call); ``registered-models/alias`` (champion).
Four requests in flight at a time. One run per model rather than per version: the two pages measured
show no run data, and a run per version tripled the requests (5 versions/s on the loaded machine).
The SQLite file is cached beside a manifest, so reruns skip seeding::

    from _ui_mlflow import ensure_mlflow_world, mlflow_server
    world = ensure_mlflow_world(Path("/work/bench-out/ui-world/mlflow"), 1000)
    with mlflow_server(world, port) as info: ...
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _bench_common import free_port, server

BENCH = Path(__file__).resolve().parent
MLFLOW_BIN = BENCH / ".venv-mlflow" / "bin" / "mlflow"
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
WORLD_VERSION = 1
N_VERSIONS = 20
REGIONS = ["Puglia", "Sicilia", "Sardegna", "Lazio", "Piemonte", "Veneto", "Toscana", "Campania"]


def log(msg: str) -> None:
    print(f"[mlflow] {msg}", file=sys.stderr, flush=True)


def model_names(n_models: int) -> list[str]:
    """The same names as Maestrale's world (`_ui_world`): the monitored model and the fleet."""
    return ["pv-nrel-50", *(f"pv-it-{i:04d}" for i in range(1, n_models))]


@contextlib.contextmanager
def mlflow_server(folder: Path, port: int, workers: int | None = None) -> Iterator[dict[str, float]]:
    """`mlflow server` on `folder/mlflow.db` and `folder/artifacts`, on 127.0.0.1:`port`, until exit."""
    cmd = [
        str(MLFLOW_BIN), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    if workers:
        cmd += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | MLFLOW_ENV
    with server(cmd, env, folder / "server.log", f"http://127.0.0.1:{port}/health") as info:
        yield info


def _post(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        out: dict[str, Any] = json.loads(r.read() or b"{}")
        return out


def _tags(d: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in d.items()]


def _run(base: str, experiment: str, name: str, v: int) -> str:
    """A training run with its params and metrics; returns the run id."""
    run = _post(base, "runs/create", {"experiment_id": experiment, "run_name": f"{name}-v{v}"})
    run_id = str(run["run"]["info"]["run_id"])
    lr = (0.03, 0.05, 0.08, 0.1)[v % 4]
    params = {"estimator": "hgb", "learning_rate": str(lr), "max_iter": str(100 * (1 + v % 5))}
    metrics = {"nmae": 0.04 + 0.001 * (v % 7), "rmse": 0.2 + 0.01 * (v % 5), "skill": 0.55 + 0.01 * (v % 9)}
    stamp = int(time.time() * 1000)
    _post(
        base,
        "runs/log-batch",
        {
            "run_id": run_id,
            "params": _tags(params),
            "metrics": [{"key": k, "value": x, "timestamp": stamp, "step": 0} for k, x in metrics.items()],
        },
    )
    return run_id


def _seed_model(base: str, experiment: str, index: int, name: str) -> None:
    """One registered model, its 20 versions and its champion alias, in order."""
    region = REGIONS[index % len(REGIONS)]
    site = "nrel-50" if index == 0 else f"it-{index:04d}"
    _post(
        base,
        "registered-models/create",
        {
            "name": name,
            "description": f"Day-ahead PV forecast, plant {site} ({region})",
            "tags": _tags({"site": site, "region": region, "target": "power_kw", "kind": "pv"}),
        },
    )
    run_id = _run(base, experiment, name, N_VERSIONS)
    for v in range(1, N_VERSIONS + 1):
        reason = "first" if v == 1 else ("shortfall breach", "skill breach", "scheduled refit")[v % 3]
        _post(
            base,
            "model-versions/create",
            {
                "name": name,
                "source": f"runs:/{run_id}/model-v{v}",
                "run_id": run_id,
                "description": f"retraining: {reason}",
                "tags": _tags({"site": site, "reason": reason, "nmae": f"{0.04 + 0.001 * (v % 7):.3f}"}),
            },
        )
    champion = N_VERSIONS - 1 if index % 10 == 0 and index else N_VERSIONS
    _post(base, "registered-models/alias", {"name": name, "alias": "champion", "version": str(champion)})


def ensure_mlflow_world(folder: Path, n_models: int, *, reseed: bool = False) -> dict[str, Any]:
    """The cached MLflow store's manifest; seeds it through the REST API when missing or stale."""
    manifest_path = folder / "manifest.json"
    want = {"world_version": WORLD_VERSION, "n_models": n_models, "n_versions": N_VERSIONS}
    if manifest_path.exists() and (folder / "mlflow.db").exists() and not reseed:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if all(manifest.get(k) == v for k, v in want.items()):
            log(f"cached MLflow store in {folder} (seeded in {manifest['seed_s']:.0f} s): seeding skipped")
            return manifest
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with mlflow_server(folder, port) as info:
        log(f"server up in {info['startup_s']:.1f} s; registering {n_models} x {N_VERSIONS} versions")
        t0 = time.perf_counter()
        names = model_names(n_models)
        experiment = str(_post(base, "experiments/create", {"name": "plants"})["experiment_id"])
        with ThreadPoolExecutor(4) as pool:
            for done, _ in enumerate(
                pool.map(lambda a: _seed_model(base, experiment, *a), enumerate(names)), 1
            ):
                if done % 100 == 0:
                    per = (time.perf_counter() - t0) * 1000 / (done * (N_VERSIONS + 4))
                    log(f"  {done} models, {per:.1f} ms per request (4 in flight)")
        seconds = time.perf_counter() - t0
    manifest = {**want, "seed_s": round(seconds, 1), "requests": n_models * (N_VERSIONS + 4)}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    log(f"seeded in {seconds:.0f} s")
    return manifest
