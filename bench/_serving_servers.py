"""The model, the request and the servers of ``bench/serving.py`` (also used by ``bench/serving_grpc.py``).

One model fitted on NREL system 50 and registered in a SQLite registry in a temp folder, the 1-row
V2 request every server gets, and how each server is started, pinned, checked and stopped::

    prep = prepare(workdir, "ridge")
    with running("maestrale", workdir, prep, args, cpus={0}, grpc=True) as srv:
        check_answer(srv.port, prep, "maestrale")
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _bench_common import best_cpu_ms, free_port, stop, wait_http, wait_quiet, wall_samples

BENCH = Path(__file__).resolve().parent
MLS_VENV = BENCH / ".venv-mlserver"
MLS_STAMP = MLS_VENV / ".mlserver-installed"
NAME = "pv-nrel-50"
REF = f"{NAME}@champion"
MAESTRALES = ("maestrale", "maestrale-nolog", "maestrale-w2")
MLSERVERS = ("mlserver-runtime", "mlserver-sklearn")
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def log(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_mlserver() -> dict[str, str]:
    """Run the (idempotent) setup script: a no-op when the venv matches pyproject.toml.

    ``ensure_mlserver()["mlserver"]`` is the installed version ("1.7.1").
    """
    if not MLS_STAMP.exists():
        log(f"setting up MLServer 1.7.1 in {MLS_VENV} (a few minutes, once) ...")
    subprocess.run(
        ["bash", str(BENCH / "setup_mlserver.sh")], check=True, stdin=subprocess.DEVNULL, stdout=sys.stderr
    )
    return dict(kv.split("=", 1) for kv in MLS_STAMP.read_text().split() if "=" in kv)


# -- the model and the request --------------------------------------------------------------------
def prepare(workdir: Path, kind: str) -> dict[str, Any]:
    """Fit, register (SQLite + local files) and joblib-dump the model; build the 1-row request.

    ``prepare(wd, "ridge")["body"]`` is the JSON request (bytes), ``["model"]`` the loaded model,
    ``["X"]`` the feature frame (the rows the 10,000-row batch is tiled from).
    """
    from maestrale import Registry
    from maestrale.datasets import nrel_system50, pv_features

    df = nrel_system50("1h").dropna(subset=["power_kw"])
    X, y = pv_features(df), df["power_kw"]
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingRegressor

        model = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(X, y)
    else:
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=1.0).fit(X, y)
    home = workdir / "home"
    reg = Registry(database_url=f"sqlite:///{home}/registry.db", storage_url=f"file://{home}/artifacts")
    mv = reg.register(NAME, model, input_example=X.head(), params={"kind": kind})
    reg.set_alias(NAME, "champion", mv.version)
    loaded = reg.load(REF)  # the exact object every server predicts with
    row = X[X["ghi"] > 300].iloc[[0]]
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": row[c].tolist()} for c in X.columns],
    }
    write_mlserver_repos(workdir, home, loaded)
    return {
        "home": home,
        "version": str(mv.version),
        "model": loaded,
        "X": X.reset_index(drop=True),
        "model_call_ms": model_call_ms(loaded, row),
        "body": json.dumps(body, separators=(",", ":")).encode(),
        "expected": float(np.asarray(loaded.predict(row)).reshape(-1)[0]),
        "sha256": mv.artifact.sha256,
    }


def write_mlserver_repos(workdir: Path, home: Path, loaded: Any) -> None:
    """Two MLServer model repositories: one with MaestraleRuntime, one with the stock sklearn runtime."""
    import joblib

    runtime = {
        "name": NAME,
        "implementation": "maestrale.serving.mlserver_runtime.MaestraleRuntime",
        "parameters": {
            "extra": {
                "ref": REF,
                "database_url": f"sqlite:///{home}/registry.db",
                "storage_url": f"file://{home}/artifacts",
            }
        },
    }
    sklearn = {
        "name": NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    for folder, model_settings in (("mlserver-runtime", runtime), ("mlserver-sklearn", sklearn)):
        d = workdir / folder / NAME
        d.mkdir(parents=True)
        (d / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
        if folder == "mlserver-sklearn":
            joblib.dump(loaded, d / "model.joblib")


def model_call_ms(model: Any, row: Any, n: int = 500) -> dict[str, float]:
    """In-process cost of the work every server does per 1-row request: build the DataFrame from the
    decoded values, then ``model.predict`` on it (``predict`` on an ndarray, for context). Median of
    ``n`` calls, ms: ``model_call_ms(model, X.iloc[[0]])["predict_dataframe"]``."""
    import statistics
    import warnings

    import pandas as pd

    cols = list(row.columns)
    values = {c: row[c].tolist() for c in cols}

    def build() -> Any:
        return pd.DataFrame({c: np.asarray(values[c], dtype=np.float64) for c in cols}, columns=cols)

    def median_ms(fn: Callable[[], Any]) -> float:
        return round(1000 * statistics.median(wall_samples(fn, n)), 3)

    frame, matrix = build(), row.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ndarray into a model fitted on a DataFrame warns every call
        return {
            "build_dataframe": median_ms(build),
            "predict_dataframe": median_ms(lambda: model.predict(frame)),
            "predict_ndarray": median_ms(lambda: model.predict(matrix)),
        }


def floor_ms(prep: dict[str, Any], n: int = 1000, rounds: int = 3) -> float | None:
    """The physical limit of any server for the 1-row REST request: CPU ms, in-process, of Maestrale's
    hot path without the HTTP server around it (orjson parse, ``json_inputs``, ``positional_decode``,
    ``served.predict``); the best of ``rounds`` means of ``n`` calls. ``floor_ms(prep)`` -> ~0.17.
    None when the hot path does not take the request (the general codec would)."""
    import orjson

    from maestrale import Registry
    from maestrale.serving.fast_infer import json_inputs, positional_decode
    from maestrale.serving.repository import load_served

    home = prep["home"]
    reg = Registry(database_url=f"sqlite:///{home}/registry.db", storage_url=f"file://{home}/artifacts")
    served = load_served(reg, REF, "champion")
    body = prep["body"]

    def once() -> Any:
        req = json_inputs(orjson.loads(body))
        decoded = positional_decode(served, req.inputs, req.content_type) if req else None
        return None if decoded is None else served.predict(decoded.frame)

    first = once()
    if first is None or not np.isclose(float(np.asarray(first).reshape(-1)[0]), prep["expected"], rtol=1e-12):
        return None
    return best_cpu_ms(once, n, rounds)


# -- servers ---------------------------------------------------------------------------------------
def server_command(
    name: str, port: int, workdir: Path, args: argparse.Namespace, grpc_port: int | None = None
) -> tuple[list[str], Path]:
    """The command line and working directory of one server: ``server_command("maestrale", 8080, wd, args)``.

    ``grpc_port``: Maestrale gets ``--grpc-port``; MLServer always serves gRPC, on this port if given.
    """
    py = Path(sys.executable)
    if name in MAESTRALES:
        cmd = [str(py.parent / "maestrale"), "serve", REF, "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
        if name == "maestrale-w2":
            cmd += ["--workers", "2"]
        if name == "maestrale-nolog":
            cmd += ["--no-log"]
        if grpc_port is not None:
            cmd += ["--grpc-port", str(grpc_port)]
        return cmd, workdir
    if name == "fastapi":
        return [str(py), str(BENCH / "_serving_fastapi.py"), REF, "--port", str(port)], workdir
    folder = workdir / name
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port or free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=1))
    return [str(MLS_VENV / "bin" / "mlserver"), "start", str(folder)], folder


def server_env(name: str, prep: dict[str, Any], args: argparse.Namespace) -> dict[str, str]:
    """The server's environment: one BLAS thread, the temp registry, no inherited venv or settings."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("MAESTRALE_", "MLSERVER_"))
    }
    env.update(THREAD_ENV)
    env.update({"DO_NOT_TRACK": "1", "MAESTRALE_HOME": str(prep["home"]), "MAESTRALE_ACTOR": "bench"})
    if name.startswith("maestrale") and getattr(args, "broker_url", None):
        env["MAESTRALE_BROKER_URL"] = args.broker_url
        env["MAESTRALE_BUS_NAMESPACE"] = args.bus_namespace
    return env


def pin(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` pinning the child to ``cpus`` (None: no pinning)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def pinned_client(cpus: set[int] | None) -> Iterator[None]:
    """Run the block (the load generator) on ``cpus``, then give this process all its CPUs back."""
    every = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, every)


@dataclass
class Server:
    """A running server: its process (the group leader), HTTP and gRPC ports and what start-up cost."""

    proc: subprocess.Popen[bytes]
    port: int
    grpc_port: int | None
    info: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def running(
    name: str, workdir: Path, prep: dict[str, Any], args: argparse.Namespace, cpus: set[int] | None,
    grpc: bool = False, tag: str = "",
) -> Iterator[Server]:  # fmt: skip
    """Start server ``name`` pinned to ``cpus``, wait until it answers and idles, stop it on exit."""
    port = free_port()
    gport = free_port() if grpc else None
    cmd, cwd = server_command(name, port, workdir, args, grpc_port=gport)
    log_path = workdir / f"{name}{tag}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=server_env(name, prep, args), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=pin(cpus),
        )  # fmt: skip
    srv = Server(
        proc, port, gport, {"command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}
    )
    try:
        try:
            srv.info["startup_s"] = round(wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 120, proc), 2)
        except (RuntimeError, TimeoutError) as exc:
            tail = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-15:])
            raise RuntimeError(f"{exc}; log tail:\n{tail}") from None
        # imports and model loading still running after the first healthy answer are not load
        wait_quiet(proc.pid, max_cores=0.05, window_s=0.5, timeout_s=30)
        yield srv
    finally:
        stop(proc)


def check_answer(port: int, prep: dict[str, Any], name: str) -> dict[str, Any]:
    """One request before the load: the prediction must be the model's; the version where reported."""
    import httpx

    r = httpx.post(
        f"http://127.0.0.1:{port}/v2/models/{NAME}/infer",
        content=prep["body"],
        headers={"content-type": "application/json"},
        timeout=30,
    )
    if r.status_code != 200:
        raise RuntimeError(f"{name}: check request answered {r.status_code}: {r.text[:300]}")
    answer = r.json()
    out = next(o for o in answer["outputs"] if o["name"] == "predict")
    got = float(np.asarray(out["data"], dtype=float).reshape(-1)[0])
    if not np.isclose(got, prep["expected"], rtol=1e-12, atol=0):
        raise RuntimeError(f"{name}: predicted {got!r}, the model predicts {prep['expected']!r}")
    version = answer.get("model_version")
    if name != "mlserver-sklearn" and version != prep["version"]:
        raise RuntimeError(f"{name}: model_version {version!r}, registry version is {prep['version']}")
    return {"prediction": got, "model_version": version, "response_bytes": len(r.content)}
