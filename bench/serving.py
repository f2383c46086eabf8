"""Model serving: Maestrale's V2 server against MLServer 1.7.1 and a bare FastAPI endpoint.

Run with the project's interpreter::

    /work/main/.venv/bin/python bench/serving.py            # 20 s per server (~3 min in all)
    /work/main/.venv/bin/python bench/serving.py --quick    # 5 s per server (~1.5 min)

What it does
------------
1. ``bench/setup_mlserver.sh`` creates ``bench/.venv-mlserver`` (``mlserver==1.7.1``,
   ``mlserver-sklearn==1.7.1``, ``uvloop<0.22``, Maestrale from this repo) the first time.
2. Fits one model on the packaged NREL system 50 data (``pv_features``, 8 float features;
   ``--model ridge`` (default) or ``hgb``), registers it with ``input_example`` in a SQLite
   registry in a temp folder as ``pv-nrel-50`` and points ``champion`` at it; also writes it
   with joblib for MLServer's own scikit-learn runtime.
3. Starts each server in turn as a subprocess (single process, one worker, no access log,
   ``OMP/OPENBLAS/MKL_NUM_THREADS=1``), pinned to CPU 0 while the load generator runs on CPU 1:

   * ``maestrale`` -- ``maestrale serve pv-nrel-50@champion --port P --log-level warning``:
     prediction logging on (the default; to ``MAESTRALE_BROKER_URL``, ``memory://`` unless
     ``--broker-url``: with the in-process bus nothing consumes the records, so this measures
     what logging costs the server: buffering, building records and publishing them);
   * ``maestrale-nolog`` -- the same with ``--no-log``;
   * ``mlserver-runtime`` -- ``mlserver start`` (``bench/.venv-mlserver``) with
     ``maestrale.serving.mlserver_runtime.MaestraleRuntime`` loading ``pv-nrel-50@champion``
     from the same registry;
   * ``mlserver-sklearn`` -- ``mlserver start`` with ``mlserver_sklearn.SKLearnModel`` on the
     joblib file (MLServer's stock scikit-learn runtime);
   * ``fastapi`` -- ``bench/_serving_fastapi.py`` under uvicorn in the project venv: parse the
     JSON, build the DataFrame, ``model.predict``, answer.

   MLServer runs with ``parallel_workers: 0`` (predictions in the server process, no worker
   pool), ``debug: false`` (no access log), loopback only; its gRPC and metrics servers stay on,
   as they are in every MLServer deployment.
4. Every server gets the same request: one row, one FP64 input per feature, request
   ``parameters.content_type = "pd"`` (the layout every server here reads). Its answer is
   checked against ``model.predict`` first (and ``model_version`` where the server reports the
   registry version). Then ``--warmup`` s of load, discarded, then ``--duration`` s measured:
   ``--concurrency`` keep-alive connections, each with one request in flight (closed loop), from
   the load generator in ``_serving_load.py`` (raw asyncio HTTP/1.1 by default; ``--client httpx``
   for ``httpx.AsyncClient``). Latency is per request, from writing it to reading the whole
   response. Server CPU is read from /proc (user + system of its process group) over the same
   window: ``CPU ms/req`` is what one request costs the server, a figure that holds when other
   work shares the machine (req/s and latency do not: check ``srv CPU``, the share of a core
   the server got, and the load averages in the JSON).
5. Prints a table on stderr and ONE JSON line on stdout. ``ratio`` is req/s over the anchor's
   req/s, ``CPU ratio`` the anchor's CPU ms per request over the server's; the anchor is the
   faster of the two MLServer runs. Targets (Maestrale with logging on,
   its default): req/s >= 2x the anchor, p99 <= 10 ms; logging on costs <= 10 % of req/s
   (``maestrale`` against ``maestrale-nolog``). ``--check``: exit 2 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _bench_common import free_port, group_cpu_s, group_rss_mb, stop, wait_http, wait_quiet
from _serving_load import run_load, run_open_loop

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MLS_VENV = BENCH / ".venv-mlserver"
MLS_STAMP = MLS_VENV / ".mlserver-installed"
NAME = "pv-nrel-50"
REF = f"{NAME}@champion"
SERVERS = ("maestrale", "maestrale-nolog", "mlserver-runtime", "mlserver-sklearn", "fastapi", "maestrale-w2")
# `maestrale serve --workers 2`, logging on: two server processes on both cores, the load generator
# unpinned beside them (a 2-core machine has no third core for it); compared with `maestrale` on one core
MLSERVERS = ("mlserver-runtime", "mlserver-sklearn")
TARGET_RATIO = 2.0
TARGET_P99_MS = 10.0
TARGET_LOG_COST_PCT = 10.0
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def log(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per server")
    p.add_argument("--warmup", type=float, default=2.0, help="discarded seconds of load before")
    p.add_argument("--concurrency", type=int, default=8, help="connections, one request in flight each")
    p.add_argument("--quick", action="store_true", help="5 s per server, 1 s warm-up")
    p.add_argument("--model", choices=["ridge", "hgb"], default="ridge")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SERVERS)}")
    p.add_argument("--broker-url", help="MAESTRALE_BROKER_URL for `maestrale` (default memory://)")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    p.add_argument("--workdir", type=Path, help="keep scratch files and server logs here")
    p.add_argument("--check", action="store_true", help="exit 2 if a target is missed")
    p.add_argument(
        "--open-rate", type=float, default=300.0,
        help="open-loop Poisson req/s after the closed loop (per server core; 0: skip)",
    )  # fmt: skip
    args = p.parse_args()
    if args.quick:
        args.duration, args.warmup = 5.0, 1.0
    return args


def ensure_mlserver() -> dict[str, str]:
    """Run the (idempotent) setup script: a no-op when the venv matches pyproject.toml."""
    if not MLS_STAMP.exists():
        log(f"setting up MLServer 1.7.1 in {MLS_VENV} (about a minute, once) ...")
    subprocess.run(
        ["bash", str(BENCH / "setup_mlserver.sh")], check=True, stdin=subprocess.DEVNULL, stdout=sys.stderr
    )
    return dict(kv.split("=", 1) for kv in MLS_STAMP.read_text().split() if "=" in kv)


# -- the model and the request --------------------------------------------------------------------
def prepare(workdir: Path, kind: str) -> dict[str, Any]:
    """Fit, register (SQLite + local files) and joblib-dump the model; build the request."""
    import joblib

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
    # MLServer repositories: one with MaestraleRuntime, one with the stock scikit-learn runtime
    for folder, model_settings in (
        (
            "mlserver-runtime",
            {
                "name": NAME,
                "implementation": "maestrale.serving.mlserver_runtime.MaestraleRuntime",
                "parameters": {
                    "extra": {
                        "ref": REF,
                        "database_url": f"sqlite:///{home}/registry.db",
                        "storage_url": f"file://{home}/artifacts",
                    }
                },
            },
        ),
        (
            "mlserver-sklearn",
            {
                "name": NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            },
        ),
    ):
        d = workdir / folder / NAME
        d.mkdir(parents=True)
        (d / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
        if folder == "mlserver-sklearn":
            joblib.dump(loaded, d / "model.joblib")
    return {
        "home": home,
        "version": str(mv.version),
        "model_call_ms": model_call_ms(loaded, row),
        "body": json.dumps(body, separators=(",", ":")).encode(),
        "expected": float(np.asarray(loaded.predict(row)).reshape(-1)[0]),
        "sha256": mv.artifact.sha256,
    }


def model_call_ms(model: Any, row: Any, n: int = 500) -> dict[str, float]:
    """In-process cost of the work every server does per 1-row request: build the DataFrame from the
    decoded values, then ``model.predict`` on it (``predict`` on an ndarray, for context). Median of
    ``n`` calls, ms."""
    import statistics
    import warnings

    import pandas as pd

    cols = list(row.columns)
    values = {c: row[c].tolist() for c in cols}

    def build() -> Any:
        return pd.DataFrame({c: np.asarray(values[c], dtype=np.float64) for c in cols}, columns=cols)

    def median_ms(fn: Callable[[], Any]) -> float:
        fn()
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return round(1000 * statistics.median(samples), 3)

    frame, matrix = build(), row.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ndarray into a model fitted on a DataFrame warns every call
        return {
            "build_dataframe": median_ms(build),
            "predict_dataframe": median_ms(lambda: model.predict(frame)),
            "predict_ndarray": median_ms(lambda: model.predict(matrix)),
        }


# -- servers ---------------------------------------------------------------------------------------
def server_command(name: str, port: int, workdir: Path, args: argparse.Namespace) -> tuple[list[str], Path]:
    """The command line and working directory of one server."""
    py = Path(sys.executable)
    maestrale = str(py.parent / "maestrale")
    if name in ("maestrale", "maestrale-nolog", "maestrale-w2"):
        cmd = [maestrale, "serve", REF, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        if name == "maestrale-w2":
            cmd += ["--workers", "2"]
        return ([*cmd, "--no-log"] if name == "maestrale-nolog" else cmd), workdir
    if name == "fastapi":
        return [str(py), str(BENCH / "_serving_fastapi.py"), REF, "--port", str(port)], workdir
    folder = workdir / name
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=1))
    return [str(MLS_VENV / "bin" / "mlserver"), "start", str(folder)], folder


def server_env(name: str, prep: dict[str, Any], args: argparse.Namespace) -> dict[str, str]:
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("MAESTRALE_", "MLSERVER_"))
    }
    env.update(THREAD_ENV)
    env.update({"DO_NOT_TRACK": "1", "MAESTRALE_HOME": str(prep["home"]), "MAESTRALE_ACTOR": "bench"})
    if name == "maestrale" and args.broker_url:
        env["MAESTRALE_BROKER_URL"] = args.broker_url
    return env


def pin(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


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


def measure(name: str, workdir: Path, prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cmd, cwd = server_command(name, port, workdir, args)
    pinned = not args.no_pin and len(os.sched_getaffinity(0)) >= 2 and name != "maestrale-w2"
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = ({cpus[0]}, {cpus[1]}) if pinned else (None, None)
    log_path = workdir / f"{name}.log"
    info: dict[str, Any] = {"command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=server_env(name, prep, args),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=pin(server_cpus),
        )
    try:
        try:
            info["startup_s"] = round(wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 120, proc), 2)
        except (RuntimeError, TimeoutError) as exc:
            tail = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-15:])
            raise RuntimeError(f"{exc}; log tail:\n{tail}") from None
        wait_quiet(proc.pid, max_cores=0.05, window_s=0.5, timeout_s=30)
        info["check"] = check_answer(port, prep, name)
        info["idle_rss_mb"], info["processes"] = group_rss_mb(proc.pid)
        path = f"/v2/models/{NAME}/infer"
        all_cpus = os.sched_getaffinity(0)
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        try:
            if args.warmup > 0:
                run_load("127.0.0.1", port, path, prep["body"], duration=args.warmup,
                         concurrency=args.concurrency, client=args.client)  # fmt: skip
            cpu0, t0 = group_cpu_s(proc.pid), time.perf_counter()
            res = run_load("127.0.0.1", port, path, prep["body"], duration=args.duration,
                           concurrency=args.concurrency, client=args.client)  # fmt: skip
            server_cpu_s, wall = group_cpu_s(proc.pid) - cpu0, time.perf_counter() - t0
        finally:
            os.sched_setaffinity(0, all_cpus)
        info.update(res.summary())
        info["server_cpu_pct"] = round(100 * server_cpu_s / wall, 1)
        # CPU per request: what the server costs whatever else the machine runs (req/s is not)
        info["cpu_ms_per_req"] = round(1000 * server_cpu_s / res.requests, 3) if res.requests else None
        info["rss_mb"], _ = group_rss_mb(proc.pid)
        if args.open_rate > 0:  # the latency a steady rate meets, not the saturation queue
            if client_cpus:
                os.sched_setaffinity(0, client_cpus)
            try:
                rate = args.open_rate * (2 if name == "maestrale-w2" else 1)  # per server core
                opened = run_open_loop("127.0.0.1", port, path, prep["body"], rate=rate,
                                       duration=args.duration)  # fmt: skip
            finally:
                os.sched_setaffinity(0, all_cpus)
            o = opened.summary()
            info["open_loop"] = {"rate": rate, "achieved_rps": o["rps"], "p50_ms": o["p50_ms"],
                                 "p99_ms": o["p99_ms"], "errors": o["errors"]}  # fmt: skip
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode} during the load")
    finally:
        stop(proc)
    return info


# -- report ----------------------------------------------------------------------------------------
def build_report(results: dict[str, dict[str, Any]], errors: dict[str, str]) -> dict[str, Any]:
    rps = {k: v.get("rps") for k, v in results.items()}
    anchors = [(rps[k], k) for k in MLSERVERS if rps.get(k)]
    anchor_rps, anchor = max(anchors) if anchors else (None, None)
    anchor_cpu = results[anchor].get("cpu_ms_per_req") if anchor else None
    for v in results.values():
        v["ratio_vs_mlserver"] = round(v["rps"] / anchor_rps, 2) if anchor_rps and v.get("rps") else None
        cpu = v.get("cpu_ms_per_req")
        v["cpu_ratio_vs_mlserver"] = round(anchor_cpu / cpu, 2) if anchor_cpu and cpu else None
    ma, nolog = results.get("maestrale", {}), results.get("maestrale-nolog", {})
    log_cost = None
    if ma.get("rps") and nolog.get("rps"):
        log_cost = round(100.0 * (nolog["rps"] - ma["rps"]) / nolog["rps"], 1)
    p99s = [v["p99_ms"] for k, v in results.items() if k.startswith("maestrale") and v.get("p99_ms")]
    met: dict[str, bool | None] = {
        "rps_ratio": None if ma.get("ratio_vs_mlserver") is None else ma["ratio_vs_mlserver"] >= TARGET_RATIO,
        "p99_ms": None if not p99s else max(p99s) <= TARGET_P99_MS,
        "logging_cost_pct": None if log_cost is None else log_cost <= TARGET_LOG_COST_PCT,
    }
    return {
        "servers": results,
        "anchor": anchor,
        "maestrale_rps_ratio_vs_mlserver": ma.get("ratio_vs_mlserver"),
        "maestrale_cpu_ratio_vs_mlserver": ma.get("cpu_ratio_vs_mlserver"),
        "maestrale_p99_ms": {
            k: results[k].get("p99_ms") for k in ("maestrale", "maestrale-nolog") if k in results
        },
        "logging_cost_pct": log_cost,
        # target >= 1.8x; the load generator shares the 2 cores with the 2 workers
        "workers2_rps_ratio": round(results["maestrale-w2"]["rps"] / ma["rps"], 2)
        if ma.get("rps") and results.get("maestrale-w2", {}).get("rps")
        else None,
        "targets": {
            "rps_ratio": f">= {TARGET_RATIO:g}x the faster MLServer (maestrale, logging on)",
            "p99_ms": f"<= {TARGET_P99_MS:g} ms (maestrale, logging on and off)",
            "logging_cost_pct": f"<= {TARGET_LOG_COST_PCT:g} % of req/s (maestrale vs maestrale-nolog)",
        },
        "met": met,
        **({"errors": errors} if errors else {}),
    }


def print_table(rep: dict[str, Any]) -> None:
    log("")
    log(
        f"{'server':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'ratio':>7}"
        f"{'CPU ms/req':>11}{'CPU ratio':>10}{'srv CPU':>8}{'cli CPU':>8}"
    )
    for name, v in rep["servers"].items():

        def f(key: str, fmt: str, v: dict[str, Any] = v) -> str:
            x = v.get(key)
            return "-" if x is None else format(x, fmt)

        ratio = "-" if v.get("ratio_vs_mlserver") is None else f"{v['ratio_vs_mlserver']:.2f}x"
        cratio = "-" if v.get("cpu_ratio_vs_mlserver") is None else f"{v['cpu_ratio_vs_mlserver']:.2f}x"
        log(
            f"{name:<18}{f('rps', '.0f'):>8}{f('p50_ms', '.2f'):>8}{f('p99_ms', '.2f'):>8}"
            f"{f('errors', 'd'):>7}{ratio:>7}{f('cpu_ms_per_req', '.3f'):>11}{cratio:>10}"
            f"{f('server_cpu_pct', '.0f') + '%':>8}{f('client_cpu_pct', '.0f') + '%':>8}"
        )
    for name, msg in rep.get("errors", {}).items():
        log(f"{name:<18}FAILED: {msg.splitlines()[0]}")
    for name, v in rep["servers"].items():
        if "open_loop" in v:
            o = v["open_loop"]
            log(
                f"{name:<18}open loop, Poisson {o['rate']:g} req/s: achieved {o['achieved_rps']}, "
                f"p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, {o['errors']} errors (target p99 <= 5 ms)"
            )
    if rep.get("workers2_rps_ratio") is not None:
        log(
            f"--workers 2 / 1 worker: {rep['workers2_rps_ratio']}x req/s "
            "(target >= 1.8x; the client shares the 2 cores)"
        )
    anchor = rep["anchor"] or "(no MLServer result)"
    log(f"ratio = req/s / req/s of {anchor}; CPU ratio = its server CPU ms per request / this one's")
    log("targets:")
    for key, text in rep["targets"].items():
        ok = rep["met"][key]
        val = {
            "rps_ratio": rep["maestrale_rps_ratio_vs_mlserver"],
            "p99_ms": max((v for v in rep["maestrale_p99_ms"].values() if v is not None), default=None),
            "logging_cost_pct": rep["logging_cost_pct"],
        }[key]
        mark = "-" if ok is None else ("ok" if ok else "MISSED")
        log(f"  {key:<18}{'-' if val is None else val!s:>8}  {text}: {mark}")


def main() -> int:
    args = parse_args()
    t_start = time.perf_counter()
    names = list(SERVERS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        log(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
        return 64
    load_start = os.getloadavg()
    if load_start[0] > 1.0:
        log(
            f"warning: 1-min load average {load_start[0]:.2f} on {os.cpu_count()} CPUs: timings will be noisy"
        )
    errors: dict[str, str] = {}
    mls_info: dict[str, str] = {}
    if any(n in MLSERVERS for n in names):
        try:
            mls_info = ensure_mlserver()
        except (subprocess.CalledProcessError, OSError) as exc:
            for n in MLSERVERS:
                if n in names:
                    errors[n] = f"bench/setup_mlserver.sh failed: {exc}"
            names = [n for n in names if n not in MLSERVERS]
    tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="maestrale-serving-")) if tmp else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    prep: dict[str, Any] = {}
    try:
        prep = prepare(workdir, args.model)
        log(
            f"model {args.model} registered as {NAME}:{prep['version']} (champion); "
            f"{args.duration:g} s per server after {args.warmup:g} s warm-up, "
            f"concurrency {args.concurrency}, client {args.client}"
        )
        for name in names:
            log(f"[{name}] ...")
            try:
                res = measure(name, workdir, prep, args)
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                log(f"[{name}] FAILED: {errors[name]}")
                continue
            results[name] = res
            log(
                f"[{name}] {res['rps']:.0f} req/s, p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms, "
                f"{res['errors']} errors (started in {res['startup_s']:.1f} s)"
            )
    finally:
        if tmp:
            shutil.rmtree(workdir, ignore_errors=True)

    rep = build_report(results, errors)
    rep["model_call_ms"] = prep.get("model_call_ms")
    import sklearn

    import maestrale

    rep["config"] = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "concurrency": args.concurrency,
        "rows_per_request": 1,
        "model": args.model,
        "client": args.client,
        "pinned": not args.no_pin and len(os.sched_getaffinity(0)) >= 2,
        "broker_url": args.broker_url or "memory://",
        "request": "one FP64 [1] input per feature (8), request content_type pd",
    }
    rep["versions"] = {
        "maestrale": maestrale.__version__,
        "mlserver": mls_info.get("mlserver"),
        "sklearn": {"project": sklearn.__version__, "mlserver_venv": mls_info.get("sklearn")},
        "python": platform.python_version(),
    }
    rep["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    rep["runtime_s"] = round(time.perf_counter() - t_start, 1)
    print_table(rep)
    if rep["model_call_ms"]:
        mc = rep["model_call_ms"]
        log(
            f"in-process, per 1-row request: DataFrame build {mc['build_dataframe']:.3f} ms + "
            f"model.predict(DataFrame) {mc['predict_dataframe']:.3f} ms (on an ndarray: "
            f"{mc['predict_ndarray']:.3f} ms): every server above pays the first two"
        )
    log(f"total {rep['runtime_s']:.0f} s")
    print(json.dumps(rep), flush=True)
    if errors:
        return 1
    if args.check and not all(rep["met"].values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
