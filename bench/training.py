"""Overhead of `maestrale.training.train` over a hand-written script that does only the fitting.

Run with the project's interpreter::

    .venv/bin/python bench/training.py            # ~1-2 min on 2 cores
    .venv/bin/python bench/training.py --quick    # smoke run
    .venv/bin/python bench/training.py --check    # exit 2 when a target is missed

Per case, the same data (real NREL system 50 hourly data written once to a local Parquet file), the
same features (`pv_features`) and the same estimator are timed two ways, alternating, after one
untimed warm-up of each:

* raw: `pd.read_parquet` + set the time index + `pv_features` + `estimator.fit` on the training rows
  (for the backtest case, also the k fold fits): the least a script must do;
* maestrale: `train(spec, registry)` end to end: read + fingerprint, validate, split, fit(s), predict,
  metrics, baselines, reference profile, serialise (skops / native) and register on SQLite + local files.

overhead = median(maestrale) - median(raw); target: overhead ≤ 5 % of raw + 50 ms, per model. The
same rule is also applied to CPU time (`time.process_time`, the fit's threads included), which other
work on a shared machine moves less than wall time; the load average at each case's ends is printed.
`--cases hgb --no-fleet` runs one case without the fleet half.
Human lines go to stderr, ONE JSON line to stdout:

    {"cases": {"hgb": {"raw_s": .., "maestrale_s": .., "overhead_s": .., "budget_s": .., "met": true,
               "overhead_without_register_s": .., "met_without_register": true, "outside_fit_s": ..,
               "breakdown_s": {"load": .., "fit": .., "register": ..}, "raw_cpu_s": ..,
               "maestrale_cpu_s": .., "overhead_cpu_s": .., "budget_cpu_s": .., "met_cpu": true,
               "load": [0.1, 0.3]}, ...},
     "fleet_workers": {"members": 40, "one_worker_s": .., "two_workers_s": .., "speedup": ..},
     "met": true}

The fleet half trains a 40-member fleet through RabbitMQ (127.0.0.1:5672, or MAESTRALE_BENCH_AMQP)
with 1, then 2 `maestrale worker` processes; target: 2 workers ≥ 1.6× faster on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

TARGET_SHARE, TARGET_FIXED_S = 0.05, 0.050
FLEET_TARGET = 1.6  # speed-up of 2 worker processes over 1 on this 2-core machine
CASES: dict[str, dict[str, Any]] = {
    "hgb": {"estimator": "hgb", "params": {"max_iter": 200, "learning_rate": 0.05}},
    "lightgbm": {"estimator": "lightgbm", "params": {"n_estimators": 200, "learning_rate": 0.05}},
    "ridge": {"estimator": "ridge", "params": {"alpha": 1.0}},
    "hgb-backtest3": {"estimator": "hgb", "params": {"max_iter": 100}, "folds": 3},
}
TRAIN_END, TEST_START = "2012-06-30", "2012-06-01"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def spec_text(path: Path, case: dict[str, Any]) -> str:
    backtest = f"\n  backtest: {{folds: {case['folds']}, test_size: 30D}}" if case.get("folds") else ""
    return f"""\
name: bench-pv
data: {{uri: {path}}}
time_column: time
target: power_kw
feature_set: pv_features
estimator: {case["estimator"]}
params: {json.dumps(case["params"])}
train_window: {{start: 2011-04-15, end: {TRAIN_END}}}
split:
  holdout: {{test_start: {TEST_START}}}{backtest}
baselines:
  persistence: {{lag: 24h}}
  climatology: {{by: hour_of_day}}
capacity: 3.4
"""


def raw_run(path: Path, spec: Any) -> tuple[float, float]:
    """What a minimal script does: read, index, features, drop missing targets, fit (plus fold fits).

    Returns (wall seconds, CPU seconds of this process: the fit's threads included).
    """
    import pandas as pd

    from maestrale.datasets import pv_features
    from maestrale.training.estimators import build_estimator

    t0, c0 = time.perf_counter(), time.process_time()
    df = pd.read_parquet(path).set_index("time").loc[:"2012-06-30 23:00"]
    df = df[df["power_kw"].notna()]
    X, y = pv_features(df), df["power_kw"]
    train = X.index < pd.Timestamp(TEST_START, tz="UTC")
    fits = [(X[train], y[train])]
    if spec.split.backtest is not None:  # the same expanding folds, cut by hand
        Xt, yt, end = X[train], y[train], X[train].index[-1]
        for k in range(spec.split.backtest.folds, 0, -1):
            cut = Xt.index <= end - k * pd.Timedelta("30D")
            fits.append((Xt[cut], yt[cut]))
    for Xf, yf in fits:
        build_estimator(spec.estimator, spec.params)[0].fit(Xf, yf)
    return time.perf_counter() - t0, time.process_time() - c0


def maestrale_run(spec: Any, registry: Any) -> tuple[float, float, dict[str, float]]:
    """`train` end to end: (wall seconds, CPU seconds of this process, its per-step wall timings)."""
    from maestrale.training import train

    t0, c0 = time.perf_counter(), time.process_time()
    result = train(spec, registry)
    return time.perf_counter() - t0, time.process_time() - c0, result.timings_s


FLEET_SPEC = {
    "name": "bench-fleet-{n}",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "hgb",
    "params": {"max_iter": 150, "early_stopping": False},
    "train_window": {"start": "2011-04-15", "end": "2012-03-31"},
    "split": {"holdout": {"test_start": "2012-03-01"}},
    "capacity": 3.4,
}
AMQP_URL = os.environ.get("MAESTRALE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _fleet_run(workers: int, members: int, tmp: Path, threads: int | None = None) -> float:
    """Seconds from publishing `members` requests to the last completion, with `workers` processes."""
    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.config import load_settings
    from maestrale.training.requests import TrainingRequests
    from maestrale.training.service import wait_for

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    home = tmp / f"fleet-{workers}-{threads}"
    env = {
        **os.environ,
        "MAESTRALE_HOME": str(home),
        "MAESTRALE_BROKER_URL": AMQP_URL,
        "MAESTRALE_BUS_NAMESPACE": namespace,
    }
    settings = load_settings(home=home, broker_url=AMQP_URL, bus_namespace=namespace)
    requests = TrainingRequests(settings.database_url)  # schema first, so workers do not race to create it
    bus = RabbitTransport(AMQP_URL, namespace=namespace)
    cmd = [sys.executable, "-m", "maestrale.cli.main", "worker"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(workers)
    ]
    try:
        for proc in procs:  # ready when it says it is consuming (fork server started, queue declared)
            assert proc.stdout is not None
            for line in proc.stdout:
                if "consuming" in line:
                    break
        time.sleep(1.0)
        from maestrale.training.spec import TrainingSpec

        spec = TrainingSpec.model_validate({**FLEET_SPEC, "fleet": {"n": list(range(members))}})
        from maestrale.training.fleet import expand_fleet

        records = requests.submit_members(expand_fleet(spec), fleet=True, reason="bench")
        t0 = time.perf_counter()
        OutboxRelay(settings.database_url, bus).run_once()
        done = wait_for(requests, [r.id for r in records], timeout=1800, poll=0.1)
        elapsed = time.perf_counter() - t0
        failed = [r for r in done if r.status != "completed"]
        if failed:
            raise RuntimeError(f"{len(failed)} fleet members failed, e.g. {failed[0].error}")
        return elapsed
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        bus.delete()
        bus.close()


def bench_fleet_workers(args: argparse.Namespace) -> dict[str, Any] | None:
    """A fleet trained through the bus by 1, then 2 `maestrale worker` processes (RabbitMQ).

    Twice: with each training free to use every core (scikit-learn's OpenMP default), and with
    MAESTRALE_TRAIN_THREADS = cores ÷ workers, the deployment we recommend (a worker per core).
    """
    members = 10 if args.quick else 40
    cores = os.cpu_count() or 2
    out: dict[str, Any] = {"members": members, "target": FLEET_TARGET}
    with tempfile.TemporaryDirectory(prefix="maestrale-fleet-") as tmp:
        for label, threads in (("threads_per_worker", True), ("default_threads", False)):
            one = _fleet_run(1, members, Path(tmp), cores if threads else None)
            two = _fleet_run(2, members, Path(tmp), max(1, cores // 2) if threads else None)
            log(f"fleet of {members} through the bus ({label}): 1 worker {one:.1f} s, 2 workers {two:.1f} s "
                f"→ speed-up {one / two:.2f}x (target >= {FLEET_TARGET}x on {cores} cores)")  # fmt: skip
            out[label] = {
                "one_worker_s": round(one, 2),
                "two_workers_s": round(two, 2),
                "speedup": round(one / two, 3),
            }
    out["speedup"] = out["threads_per_worker"]["speedup"]
    out["met"] = out["speedup"] >= FLEET_TARGET
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs per side and case (median reported)")
    p.add_argument("--quick", action="store_true", help="2 runs, hgb and ridge only")
    p.add_argument("--check", action="store_true", help="exit 2 when a case misses its target")
    p.add_argument("--cases", help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--no-fleet", action="store_true", help="skip the fleet-through-the-bus half")
    args = p.parse_args()
    runs, names = (2, ["hgb", "ridge"]) if args.quick else (args.runs, list(CASES))
    if args.cases:
        names = [n.strip() for n in args.cases.split(",")]
        if unknown := [n for n in names if n not in CASES]:
            p.error(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(CASES)}")

    from maestrale import Registry
    from maestrale.datasets import nrel_system50
    from maestrale.training import load_spec

    out: dict[str, Any] = {"cases": {}, "target": {"share": TARGET_SHARE, "fixed_s": TARGET_FIXED_S}}
    with tempfile.TemporaryDirectory(prefix="maestrale-bench-") as tmp:
        path = Path(tmp) / "nrel-50.parquet"
        nrel_system50("1h").reset_index().to_parquet(path)
        registry = Registry(database_url=f"sqlite:///{tmp}/r.db", storage_url=f"file://{tmp}/artifacts")
        log(f"data: {path.stat().st_size / 1e6:.1f} MB Parquet; registry: SQLite + local files in {tmp}")
        for name in names:
            spec = load_spec(spec_text(path, CASES[name]))
            raw_run(path, spec), maestrale_run(spec, registry)  # warm-up: imports, caches, first writes
            raw, ours, parts, raw_cpu, ours_cpu = [], [], [], [], []
            load_before = os.getloadavg()[0]
            for _ in range(runs):  # alternate, so load from other work hits both sides alike
                seconds, cpu = raw_run(path, spec)
                raw.append(seconds)
                raw_cpu.append(cpu)
                seconds, cpu, timings = maestrale_run(spec, registry)
                ours.append(seconds)
                ours_cpu.append(cpu)
                parts.append(timings)
            r, m = statistics.median(raw), statistics.median(ours)
            # CPU time: what other helpers' load on this shared machine moves least (the fit's threads
            # count on both sides alike); its budget is the same rule applied to the raw CPU time
            rc, mc = statistics.median(raw_cpu), statistics.median(ours_cpu)
            budget_cpu = TARGET_SHARE * rc + TARGET_FIXED_S
            budget = TARGET_SHARE * r + TARGET_FIXED_S
            breakdown = {k: round(statistics.median(t.get(k, 0.0) for t in parts), 4) for k in parts[0]}
            # registering = serialising in a safe format (skops for scikit-learn) + SQL + blob write: a
            # script that saves its model pays most of it too, so it is also reported apart
            without_register = m - r - breakdown.get("register", 0.0)
            case = {
                "raw_s": round(r, 4),
                "maestrale_s": round(m, 4),
                "overhead_s": round(m - r, 4),
                "overhead_share": round((m - r) / r, 4),
                "budget_s": round(budget, 4),
                "met": m - r <= budget,
                "overhead_without_register_s": round(without_register, 4),
                "met_without_register": without_register <= budget,
                "breakdown_s": breakdown,
                "runs": runs,
                "raw_cpu_s": round(rc, 4),
                "maestrale_cpu_s": round(mc, 4),
                "overhead_cpu_s": round(mc - rc, 4),
                "budget_cpu_s": round(budget_cpu, 4),
                "met_cpu": mc - rc <= budget_cpu,
                "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
            out["cases"][name] = case
            log(
                f"{name:14s} raw {r * 1000:8.1f} ms  maestrale {m * 1000:8.1f} ms  overhead "
                f"{(m - r) * 1000:+7.1f} ms ({(m - r) / r:+.1%}); budget {budget * 1000:.1f} ms: "
                f"{'met' if case['met'] else 'MISSED'}; without registering {without_register * 1000:+.1f} ms"
            )
            log(
                f"    CPU: raw {rc * 1000:.1f} ms  maestrale {mc * 1000:.1f} ms  "
                f"overhead {(mc - rc) * 1000:+.1f} ms; "
                f"budget {budget_cpu * 1000:.1f} ms: {'met' if case['met_cpu'] else 'MISSED'}; "
                f"load {case['load'][0]} -> {case['load'][1]}"
            )
            # where the overhead goes, beside the bare fit of the same run: every step but the fit(s)
            steps = {k: v for k, v in breakdown.items() if k != "fit"}
            case["outside_fit_s"] = round(sum(steps.values()), 4)
            log(
                f"    raw (read + features + fit) {r * 1000:.1f} ms; "
                f"maestrale fit {breakdown.get('fit', 0) * 1000:.1f} ms; "
                f"outside the fit {sum(steps.values()) * 1000:.1f} ms = "
                + ", ".join(f"{k} {v * 1000:.1f}" for k, v in steps.items())
            )
    out["fleet_workers"] = None if args.no_fleet else bench_fleet_workers(args)
    fleet = out["fleet_workers"]
    out["met"] = all(c["met"] for c in out["cases"].values()) and (fleet is None or fleet["met"])
    print(json.dumps(out))
    return 2 if args.check and not out["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
