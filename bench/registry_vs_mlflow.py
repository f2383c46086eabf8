"""Maestrale's registry against MLflow 3.x, the anchor: same machine, same run, same data.

Run with the project's interpreter::

    /work/main/.venv/bin/python bench/registry_vs_mlflow.py            # full run (~5 min)
    /work/main/.venv/bin/python bench/registry_vs_mlflow.py --quick    # smoke run (~2 min)

What it does
------------
1. ``bench/setup_anchors.sh`` creates ``bench/.venv-mlflow`` (``mlflow>=3,<4``,
   scikit-learn, pandas) the first time, so MLflow never constrains our dependencies.
2. Writes one seeded data set (numpy, 200 rows x 20 features, linear target + noise) to
   an ``.npz``; each side fits the same 50 ``Ridge(alpha=0.1*(i+1))`` models from it.
3. Runs ``_mlflow_side.py`` in the MLflow venv, then ``_maestrale_side.py`` in this
   interpreter, one after the other (never concurrently: the machine has 2 cores).  Each
   side measures, first on its Python API with a local backend (SQLite + local files),
   then through its own REST server on 127.0.0.1 (SQLite + local files behind it):

   * register: per-model wall time of 50 registrations (params, metrics, schema, a
     ``site`` tag), after one untimed warm-up registration.  MLflow uses its fastest path
     (explicit ``pip_requirements`` + precomputed signature); its default path
     (``input_example``, requirement inference) is timed on ``--n-default`` models for context;
   * load by alias + predict one row, x50 (MLflow: ``mlflow.sklearn.load_model``, the
     flavor loader its docs recommend; ``mlflow.pyfunc.load_model`` reported as context);
   * search with 1000 versions present (100 hits of ``name = .. and tags.site = 's7'``),
     median of 30 queries after a warm-up; beside it the floor of any search over the same
     documents (``_search_floor.py``: the store's SQL on a bare sqlite3 connection + orjson per
     document; REST adds a bare asyncio HTTP round trip of the same bytes; the typed floors add
     pydantic's validation of the page into ``ModelVersion`` objects): MLflow's time over the
     floor is the largest ratio any implementation could reach in that run;
   * package import time: ``perf_counter`` around ``import <pkg>`` inside 7 fresh
     subprocesses (median, after a discarded warm-up).

   Servers are started by the side scripts, health-checked, given time to go CPU-quiet
   (MLflow 3 forks a job runner and huey consumers that are still importing when
   ``/health`` first answers), and stopped by their own process-group id at the end.
   ``MLFLOW_DISABLE_TELEMETRY=true`` and ``DO_NOT_TRACK=1`` are set for every MLflow process.
4. Prints readable lines on stderr and ONE JSON line on stdout::

     {"register_ms": {"maestrale": m, "mlflow": m, "ratio": r}, "register_rest_ms": ..,
      "load_predict_ms": .., "load_predict_rest_ms": .., "search_ms": .., "search_rest_ms": ..,
      "import_s": .., "mlflow_default_register_ms": .., "targets": {..}, "met": {..}, ...}

   Values are medians; ``ratio`` = mlflow / maestrale (how many times faster Maestrale is).
   ``--check`` makes the exit code 2 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
MLFLOW_VENV = BENCH / ".venv-mlflow"
MLFLOW_PY = MLFLOW_VENV / "bin" / "python"
STAMP = MLFLOW_VENV / ".anchors-installed"
SEED = 20240611
N_ROWS, N_FEATURES = 200, 20

# minimum speed-up (mlflow / maestrale) per metric; load/search targets apply to REST too
TARGETS: dict[str, float] = {
    "register_ms": 15.0,
    "register_rest_ms": 10.0,
    "load_predict_ms": 5.0,
    "load_predict_rest_ms": 5.0,
    "search_ms": 20.0,
    "search_rest_ms": 20.0,
}
IMPORT_MAX_S = 0.15  # `import maestrale`, absolute

MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}


def log(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller counts (smoke test)")
    p.add_argument("--no-rest", action="store_true", help="skip both REST servers")
    p.add_argument("--only", choices=["mlflow", "maestrale"], help="run one side only")
    p.add_argument("--n-register", type=int)
    p.add_argument("--n-versions", type=int)
    p.add_argument("--workdir", type=Path, help="keep scratch files here (default: temp dir, removed)")
    p.add_argument("--check", action="store_true", help="exit 2 if a target is missed")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per side")
    return p.parse_args()


def ensure_anchors() -> dict[str, str]:
    if not (STAMP.exists() and MLFLOW_PY.exists()):
        log(f"setting up the MLflow anchor in {MLFLOW_VENV} (a few minutes, once) ...")
        subprocess.run(
            ["bash", str(BENCH / "setup_anchors.sh")], check=True, env={**os.environ, **MLFLOW_ENV}
        )
    info = dict(kv.split("=", 1) for kv in STAMP.read_text().split() if "=" in kv)
    return info


def write_data(path: Path) -> None:
    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    w = rng.normal(size=N_FEATURES)
    y = X @ w + 0.1 * rng.normal(size=N_ROWS)
    np.savez(path, X=X, y=y)


def run_side(
    name: str, python: Path, script: Path, argv: list[str], env: dict[str, str], workdir: Path, timeout: float
) -> dict[str, Any]:
    """Run one side; forward its ``[name...]`` progress lines, keep the rest in a log file."""
    out_path, err_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    t0 = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(python), str(script), *argv],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=workdir,
        )
        watchdog = threading.Timer(timeout, proc.kill)  # the side stops its own servers on SIGTERM only
        watchdog.start()
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                err.write(line)
                if line.startswith(f"[{name}"):
                    log("  " + line.rstrip())
            rc = proc.wait()
        finally:
            watchdog.cancel()
    if rc != 0:
        tail = err_path.read_text().strip().splitlines()[-15:]
        raise RuntimeError(f"{name} side exited {rc}; stderr tail:\n" + "\n".join(tail))
    lines = [ln for ln in out_path.read_text().splitlines() if ln.strip()]
    result: dict[str, Any] = json.loads(lines[-1])
    result["side_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def dig(d: dict[str, Any] | None, *keys: str) -> float | None:
    cur: Any = d
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return float(cur) if isinstance(cur, int | float) else None


def pair(ma: float | None, ml: float | None) -> dict[str, float | None]:
    ratio = round(ml / ma, 2) if ma and ml else None
    return {"maestrale": ma, "mlflow": ml, "ratio": ratio}


def build_report(ma: dict[str, Any] | None, ml: dict[str, Any] | None) -> dict[str, Any]:
    rep: dict[str, Any] = {}
    for key, mode, metric in (
        ("register_ms", "direct", "register"),
        ("register_rest_ms", "rest", "register"),
        ("load_predict_ms", "direct", "load_predict"),
        ("load_predict_rest_ms", "rest", "load_predict"),
        ("search_ms", "direct", "search"),
        ("search_rest_ms", "rest", "search"),
    ):
        rep[key] = pair(dig(ma, mode, metric, "median"), dig(ml, mode, metric, "median"))
    # the floor of any search over the same 100 documents (bench/_search_floor.py): MLflow's time over
    # it is the largest ratio any implementation could reach in this run
    rep["search_floor_ms"] = pair(
        dig(ma, "direct", "search_floor", "direct", "median"), dig(ml, "direct", "search", "median")
    )
    rep["search_rest_floor_ms"] = pair(
        dig(ma, "direct", "search_floor", "rest_median"), dig(ml, "rest", "search", "median")
    )
    # the same with the page validated into typed ModelVersion objects, as a search returns them
    rep["search_typed_floor_ms"] = pair(
        dig(ma, "direct", "search_floor", "direct_typed_median"), dig(ml, "direct", "search", "median")
    )
    rep["search_rest_typed_floor_ms"] = pair(
        dig(ma, "direct", "search_floor", "rest_typed_median"), dig(ml, "rest", "search", "median")
    )
    rep["import_s"] = pair(dig(ma, "import", "median_s"), dig(ml, "import", "median_s"))
    rep["mlflow_default_register_ms"] = pair(
        dig(ma, "direct", "register", "median"), dig(ml, "direct", "register_default", "median")
    )
    rep["targets"] = {**{k: f">= {v:g}x" for k, v in TARGETS.items()}, "import_s": f"<= {IMPORT_MAX_S:g} s"}
    met: dict[str, bool | None] = {}
    for k, v in TARGETS.items():
        r = rep[k]["ratio"]
        met[k] = None if r is None else r >= v
    imp = rep["import_s"]["maestrale"]
    met["import_s"] = None if imp is None else imp <= IMPORT_MAX_S
    rep["met"] = met
    rep["context"] = {
        "mlflow_pyfunc_load_predict_ms": dig(ml, "direct", "load_predict_pyfunc", "median"),
        "mlflow_pyfunc_load_predict_rest_ms": dig(ml, "rest", "load_predict_pyfunc", "median"),
        "mlflow_fast_path_with_input_example_ms": dig(ml, "direct", "register_fast_input_example", "median"),
        "maestrale_import_registry_s": dig(ma, "import_registry", "median_s"),
        "register_cold_ms": {
            side: {mode: dig(d, mode, "register_cold_ms") for mode in ("direct", "rest")}
            for side, d in (("maestrale", ma), ("mlflow", ml))
        },
        "populate_per_version_ms": {
            side: {mode: dig(d, mode, "populate", "per_version_ms") for mode in ("direct", "rest")}
            for side, d in (("maestrale", ma), ("mlflow", ml))
        },
        "server_idle_rss_mb": {
            side: dig(d, "rest", "server", "rss_mb") for side, d in (("maestrale", ma), ("mlflow", ml))
        },
        "server_processes": {
            side: dig(d, "rest", "server", "processes") for side, d in (("maestrale", ma), ("mlflow", ml))
        },
        "server_startup_s": {
            side: dig(d, "rest", "server", "startup_s") for side, d in (("maestrale", ma), ("mlflow", ml))
        },
        "search_hits": {
            side: dig(d, "direct", "search_hits") for side, d in (("maestrale", ma), ("mlflow", ml))
        },
    }
    return rep


def print_table(rep: dict[str, Any]) -> None:
    log("")
    log(f"{'metric (median)':<28}{'maestrale':>12}{'mlflow':>12}{'ratio':>9}  target")
    floors = [f"search{rest}{typed}_floor_ms" for typed in ("", "_typed") for rest in ("", "_rest")]
    for key in (*TARGETS, *floors, "import_s", "mlflow_default_register_ms"):
        row = rep[key]

        def fmt(v: float | None, key: str = key) -> str:
            if v is None:
                return "-"
            return f"{v:.3f}" if key == "import_s" else f"{v:.2f}"

        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.1f}x"
        target = rep["targets"].get(key, "")
        if key.endswith("floor_ms"):
            target = "the floor: ratio = the most any implementation could reach"
        ok = rep["met"].get(key)
        mark = "" if ok is None else ("ok" if ok else "MISSED")
        log(f"{key:<28}{fmt(row['maestrale']):>12}{fmt(row['mlflow']):>12}{ratio:>9}  {target} {mark}")


def main() -> int:
    args = parse_args()
    t_start = time.perf_counter()
    counts = {
        "n_register": 50,
        "n_load": 50,
        "n_versions": 1000,
        "n_search": 30,
        "n_import": 7,
        "n_default": 5,
    }
    if args.quick:
        counts = {
            "n_register": 10,
            "n_load": 10,
            "n_versions": 200,
            "n_search": 10,
            "n_import": 3,
            "n_default": 1,
        }
    if args.n_register:
        counts["n_register"] = args.n_register
    if args.n_versions:
        counts["n_versions"] = args.n_versions

    load_start = os.getloadavg()
    if load_start[0] > 1.0:
        log(
            f"warning: 1-min load average {load_start[0]:.2f} on {os.cpu_count()} CPUs: timings will be noisy"
        )
    tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="maestrale-bench-")) if tmp else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data.npz"
    write_data(data)
    argv_common = ["--data", str(data)]
    for k, v in counts.items():
        argv_common += [f"--{k.replace('_', '-')}", str(v)]
    if args.no_rest:
        argv_common.append("--no-rest")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MLFLOW_ENV)
    results: dict[str, dict[str, Any] | None] = {"mlflow": None, "maestrale": None}
    errors: dict[str, str] = {}
    anchor: dict[str, str] = {}
    try:
        sides = [s for s in ("mlflow", "maestrale") if args.only in (None, s)]
        for side in sides:
            try:
                if side == "mlflow":
                    anchor = ensure_anchors()
                    python = MLFLOW_PY
                else:
                    python = Path(sys.executable)
                log(f"[{side}] running {python} ...")
                res = run_side(
                    side,
                    python,
                    BENCH / f"_{side}_side.py",
                    [*argv_common, "--workdir", str(workdir / side)],
                    env,
                    workdir,
                    args.timeout,
                )
                results[side] = res
                log(f"[{side}] done in {res['side_wall_s']:.0f} s")
            except Exception as exc:
                errors[side] = f"{type(exc).__name__}: {exc}"
                log(f"[{side}] FAILED: {errors[side]}")
    finally:
        if tmp:
            shutil.rmtree(workdir, ignore_errors=True)

    rep = build_report(results["maestrale"], results["mlflow"])
    ma, ml = results["maestrale"], results["mlflow"]
    rep["versions"] = {
        "maestrale": ma and ma.get("version"),
        "mlflow": ml and ml.get("version"),
        "sklearn": {"maestrale": ma and ma.get("sklearn"), "mlflow": ml and ml.get("sklearn")},
        "python": (ma or ml or {}).get("python"),
    }
    rep["counts"] = counts
    rep["mlflow_venv"] = anchor
    rep["mlflow_calls"] = ml and ml.get("calls")
    rep["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    rep["runtime_s"] = round(time.perf_counter() - t_start, 1)
    if errors:
        rep["errors"] = errors
    print_table(rep)
    log(f"total {rep['runtime_s']:.0f} s")
    print(json.dumps(rep, sort_keys=False), flush=True)
    if errors:
        return 1
    if args.check and not all(v for v in rep["met"].values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
