"""Training throughput of a fleet through RabbitMQ + PostgreSQL with 1, then 2 `maestrale worker` processes.

Run with the project's interpreter (needs maestrale[fleet,rabbitmq,postgres] and the local services)::

    .venv/bin/python bench/fleet_training.py              # 40 models per run, 3-5 min on 2 idle cores
    .venv/bin/python bench/fleet_training.py --modes single --repeat 3 --quiet-load 1.0   # shared machine
    .venv/bin/python bench/fleet_training.py --quick      # 10 models, one mode
    .venv/bin/python bench/fleet_training.py --check      # exit 2 when 2 single-threaded workers < 1.7x one
    .venv/bin/python bench/fleet_training.py --database sqlite --modes single   # SQLite's share, if any

The data are real-physics plants of `maestrale.datasets.fleet` (clear sky at each plant's coordinates,
clouds from the PVGIS year): one Parquet file per plant, its training year only. The fleet spec trains
HistGradientBoosting on `pv_features` for each plant. Each run gets a fresh PostgreSQL database, a fresh
artifact folder and a unique bus namespace; the workers are separate `maestrale worker` processes.

Three thread modes, each with 1 worker then 2 workers:

* `single`: MAESTRALE_TRAIN_THREADS=1, one thread per training (the target: 2 workers >= 1.7x one);
* `auto`: no setting, each job's budget is cores / concurrent training slots on the host;
* `all-cores`: MAESTRALE_TRAIN_THREADS=<cores> for every worker, which is what each job did before it
  had a budget (OpenMP's default), i.e. 2 workers x 2 threads on 2 cores.

The machine may be shared (other processes compete for the cores), so each run prints the load average
before and after, and the runs of one mode alternate 1 and 2 workers; `--repeat` runs it all again,
`--quiet-load` waits for a quieter moment. Besides wall time, each run prints what would reveal the
other suspects: the mean seconds of a fit as the workers timed it (in the child: grows when threads
fight over cores), the worker's phases per model (bookkeeping before, the child, reporting after), the
models each worker took (prefetch hogging the queue would skew it; "already done" counts redeliveries),
the CPU seconds of this process's poller, and the CPU seconds the workers' process trees used per
model with their share of the cores in use. CPU per model barely depends on the load of other
processes (unless a job's threads spin waiting for each other), so it shows what a run cost even when
its wall time shows mostly how busy the machine was.

Wall time runs from publishing the requests to the last completion as the workers recorded it (the
`trainings` rows' `updated_at`), so the bench's own polling (once a second, one query) costs nothing
measurable. The workers run `maestrale worker` with INFO logging, whose lines give each job's budget.
`models/h/core` divides by the cores in use (workers x threads, at most the machine's);
`overhead/model` is a worker's wall time per model minus a bare fit (read Parquet + features + fit,
with the same threads, in this process). Human lines go to stderr, one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _bench_common import FreshDatabase

TARGET = 1.7  # speed-up of 2 single-threaded workers over 1 on this 2-core machine
AMQP_URL = os.environ.get("MAESTRALE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_ADMIN = os.environ.get("MAESTRALE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PARAMS = {"max_iter": 150, "early_stopping": False}
TRAIN_YEAR = 2021
TEST_START = f"{TRAIN_YEAR}-12-01"
MODES = ("single", "auto", "all-cores")
# `maestrale worker`, with the training worker's INFO lines (one per model, with its thread budget)
WORKER = (
    "import logging, sys; from maestrale.cli.main import main; "
    "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s'); "
    "logging.getLogger('maestrale.training.worker').setLevel(logging.DEBUG); "
    "sys.argv = ['maestrale', 'worker']; main()"
)
TRAINED = re.compile(r"^INFO training \S+ → \S+:\d+(?: \((\d+) threads?\))?")
BEFORE = re.compile(r"^DEBUG request \S+: bookkeeping before training ([\d.]+) s")  # the worker's debug lines
AFTER = re.compile(r"^DEBUG request \S+: training ([\d.]+) s, reporting ([\d.]+) s")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process, its reaped children, and its live children's (the worker, its fork
    server, and the training children the fork server reaped), from /proc; 0 where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = sum(int(x) for x in stat[11:15]) / TICK  # utime stime cutime cstime
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return 0.0
    return own + sum(tree_cpu_s(int(k)) for k in kids)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_plants(folder: Path, members: int) -> list[dict[str, Any]]:
    """One Parquet file per PV plant (its training year); the fleet spec's member list."""
    from maestrale.datasets.fleet import synthetic_fleet

    fleet = synthetic_fleet(members, n_wind=0, seed=11, fault_share=0.0, train_year=TRAIN_YEAR)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for site in fleet.sites:
        frame = fleet.frame(site.name).loc[: f"{TRAIN_YEAR}-12-31 23:00"]
        frame.reset_index().to_parquet(folder / f"{site.name}.parquet")
        out.append({"plant": site.name, "capacity": round(site.capacity_kw, 1)})
    return out


def fleet_spec(folder: Path, members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fleet": members,
        "name": "bench-{plant}",
        "data": {"uri": f"{folder}/{{plant}}.parquet"},
        "time_column": "time",
        "target": "power_kw",
        "feature_set": "pv_features",
        "estimator": "hgb",
        "params": PARAMS,
        "train_window": {"start": f"{TRAIN_YEAR}-01-01", "end": f"{TRAIN_YEAR}-12-31"},
        "split": {"holdout": {"test_start": TEST_START}},
    }


def bare_fit_s(folder: Path, plants: list[str], threads: int) -> float:
    """Median seconds of what a script must do at least: read, features, fit (same params, `threads`)."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from maestrale.datasets import pv_features

    times = []
    with threadpool_limits(threads):
        for plant in plants:
            t0 = time.perf_counter()
            df = pd.read_parquet(folder / f"{plant}.parquet").set_index("time")
            df = df[df["power_kw"].notna()]
            X, y = pv_features(df), df["power_kw"]
            rows = X.index < pd.Timestamp(TEST_START, tz="UTC")
            HistGradientBoostingRegressor(**PARAMS, random_state=0).fit(X[rows], y[rows])
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Worker:
    """A `maestrale worker` process, ready (consuming); its output drained in a thread (a full pipe
    would block it): the models it trained, their budgets, and its last lines for an error message."""

    def __init__(self, env: dict[str, str]) -> None:
        cmd = [sys.executable, "-c", WORKER]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.tail: deque[str] = deque(maxlen=30)
        self.budgets: Counter[str] = Counter()
        self.phases: dict[str, list[float]] = {"before": [], "child": [], "after": []}
        self.warnings: list[str] = []
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.tail.append(line.rstrip())
                if "consuming" in line:
                    ready.set()
                if m := TRAINED.match(line):  # without a budget: a request already done (redelivered)
                    self.budgets[m.group(1) or "already done"] += 1
                elif m := BEFORE.match(line):
                    self.phases["before"].append(float(m.group(1)))
                elif m := AFTER.match(line):
                    self.phases["child"].append(float(m.group(1)))
                    self.phases["after"].append(float(m.group(2)))
                elif line.startswith(("WARNING", "ERROR", "CRITICAL")) and len(self.warnings) < 5:
                    self.warnings.append(line.strip()[:300])  # e.g. why a request came back
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(120) or self.proc.poll() is not None:
            raise RuntimeError("worker did not start:\n" + "\n".join(self.tail))


def _stop(workers: list[Worker]) -> None:
    for w in workers:
        w.proc.terminate()
    for w in workers:
        try:
            w.proc.wait(60)
        except subprocess.TimeoutExpired:
            w.proc.kill()


def _database(kind: str, run_dir: Path) -> tuple[str, FreshDatabase | None]:
    if kind == "sqlite":  # the embedded default: one file, WAL, every worker writing to it
        return f"sqlite:///{run_dir}/registry.db", None
    db = FreshDatabase(PG_ADMIN, prefix="bench_fleet")
    return db.url, db


def fleet_run(
    spec: dict[str, Any], workers: int, threads: int | None, tmp: Path, database: str
) -> dict[str, Any]:
    """Train the fleet with `workers` processes; wall seconds, in-child fit seconds, who trained what."""
    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.registry.store import SqlStore
    from maestrale.training.fleet import expand_fleet
    from maestrale.training.requests import TrainingRequests
    from maestrale.training.spec import TrainingSpec

    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{workers}-", dir=tmp))
    url, db = _database(database, run_dir)
    namespace = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "MAESTRALE_HOME": str(run_dir / "home"),
        "MAESTRALE_DATABASE_URL": url,
        "MAESTRALE_STORAGE_URL": f"file://{run_dir}/artifacts",
        "MAESTRALE_BROKER_URL": AMQP_URL,
        "MAESTRALE_BUS_NAMESPACE": namespace,
        "MAESTRALE_DATA_SOURCES": str(tmp / "data"),
        # the run's own slot folder: workers of other runs or tests on a shared host must not count
        "MAESTRALE_TRAIN_SLOTS_DIR": str(run_dir / "slots"),
    }
    env.pop("MAESTRALE_TRAIN_THREADS", None)
    if threads is not None:
        env["MAESTRALE_TRAIN_THREADS"] = str(threads)
    requests = TrainingRequests(url)  # schema first, so the workers do not race to create it
    SqlStore(url)
    bus = RabbitTransport(AMQP_URL, namespace=namespace)
    procs: list[Worker] = []
    try:
        for _ in range(workers):
            procs.append(Worker(env))
        members = expand_fleet(TrainingSpec.model_validate(spec))
        records = requests.submit_members(members, fleet=True, reason="bench")
        fleet_id = records[0].fleet_id
        cpu_start = sum(tree_cpu_s(w.proc.pid) for w in procs)  # start-up and warm-up are not the fleet's
        load0, t0, cpu0, polls = load_average(), datetime.now(UTC), time.process_time(), 0
        OutboxRelay(url, bus).run_once()
        while True:  # one query a second: the poller must not be what we measure
            rows = requests.list(fleet_id=fleet_id, limit=len(records))
            polls += 1
            if all(r.done for r in rows):
                cpu = sum(tree_cpu_s(w.proc.pid) for w in procs)  # before they stop: live children count
                break
            if any(w.proc.poll() is not None for w in procs):
                raise RuntimeError("a worker exited:\n" + "\n".join(line for w in procs for line in w.tail))
            time.sleep(1.0)
        poller_cpu = time.process_time() - cpu0
        failed = [r for r in rows if r.status != "completed"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(rows)} models failed, e.g. {failed[0].error}")
        wall = (max(r.updated_at for r in rows) - t0).total_seconds()
        store = SqlStore(url)
        inside = statistics.mean(store.get_version(f"{r.name}:{r.version}").duration_s or 0.0 for r in rows)
        time.sleep(0.5)  # the last INFO line of each worker reaches its drain thread
        budgets = sorted(set().union(*(w.budgets for w in procs)))
        phases = {k: round(statistics.mean(v), 3) for k in ("before", "child", "after")
                  if (v := [x for w in procs for x in w.phases[k]])}  # fmt: skip
        return {"wall_s": round(wall, 2), "train_in_child_s": round(inside, 3), "budgets": budgets,
                "phases_s": phases, "workers_cpu_s": round(cpu - cpu_start, 2),
                "models_per_worker": [sum(w.budgets.values()) for w in procs],
                "worker_warnings": [x for w in procs for x in w.warnings],
                "poller_cpu_s": round(poller_cpu, 3), "polls": polls,
                "load_before": load0, "load_after": load_average()}  # fmt: skip
    finally:
        _stop(procs)
        bus.delete()
        bus.close()
        if db is not None:
            db.drop()


def wait_for_quiet(limit: float | None, patience_s: float = 600.0) -> None:
    """On a shared machine: wait until the 1-minute load average is under `limit` (or give up)."""
    if limit is None:
        return
    deadline = time.monotonic() + patience_s
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(5.0)
    if os.getloadavg()[0] >= limit:
        log(f"  load {load_average()} still >= {limit} after {patience_s:.0f} s: running anyway")


def run_mode(
    mode: str, spec: dict[str, Any], tmp: Path, bare: dict[int, float], cores: int, database: str,
    quiet_load: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """1 worker then 2 workers in one thread mode; the side-by-side figures."""
    members = len(spec["fleet"])
    out: dict[str, Any] = {}
    for workers in (1, 2):
        threads = {"single": 1, "auto": None, "all-cores": cores}[mode]
        wait_for_quiet(quiet_load)
        r = fleet_run(spec, workers, threads, tmp, database)
        per_job = threads or max(1, cores // workers)  # what the auto budget gives (the run's own slots)
        in_use = min(cores, workers * per_job)
        r["cores_in_use"] = in_use
        r["models_per_h_per_core"] = round(members / (r["wall_s"] / 3600) / in_use, 1)
        r["per_model_s"] = round(r["wall_s"] / members, 3)
        r["bare_fit_s"] = round(bare[per_job], 3)
        # a worker's wall time per model, minus the least a script would spend on it
        r["overhead_per_model_s"] = round(r["wall_s"] * workers / members - bare[per_job], 3)
        # CPU the workers' process trees got, per model and as a share of their cores: under 1 when
        # other processes took the cores, or the workers waited (database, broker)
        r["cpu_per_model_s"] = round(r["workers_cpu_s"] / members, 3)
        r["cpu_share"] = round(r["workers_cpu_s"] / r["wall_s"] / in_use, 2)
        out[f"{workers}w"] = r
        ph = r["phases_s"]
        log(f"  {mode:9s} {workers} worker(s): {r['wall_s']:6.1f} s  {r['models_per_h_per_core']:6.0f} "
            f"models/h/core  overhead/model {r['overhead_per_model_s'] * 1000:5.0f} ms (bare fit "
            f"{r['bare_fit_s'] * 1000:.0f} ms)  threads {','.join(r['budgets'])}  per worker "
            f"{r['models_per_worker']}  load {r['load_before']} → {r['load_after']}")  # fmt: skip
        log(f"      per model: fit in child {r['train_in_child_s'] * 1000:.0f} ms; worker phases "
            f"{', '.join(f'{k} {v * 1000:.0f} ms' for k, v in ph.items())}; workers' CPU "
            f"{r['cpu_per_model_s'] * 1000:.0f} ms, share of their cores {r['cpu_share']:.2f}; poller "
            f"{r['poller_cpu_s']:.2f} cpu-s in {r['polls']} polls")  # fmt: skip
        for line in r["worker_warnings"]:
            log(f"      worker said: {line}")
    out["speedup"] = round(out["1w"]["wall_s"] / out["2w"]["wall_s"], 3)
    return out


def available_cores() -> int:
    from maestrale.training.threads import available_cores as cores

    return cores()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=40, help="models per run")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--repeat", type=int, default=1, help="run every mode this many times")
    quiet = "before each run, wait (up to 10 min) for the 1-minute load to fall below L"
    p.add_argument("--quiet-load", type=float, default=None, metavar="L", help=quiet)
    p.add_argument("--quick", action="store_true", help="10 models, single-threaded mode only")
    p.add_argument("--check", action="store_true", help=f"exit 2 when the single mode is under {TARGET}x")
    args = p.parse_args()
    members = 10 if args.quick else args.members
    modes = ["single"] if args.quick else [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s) {unknown}: choose from {', '.join(MODES)}")
    if not 1 <= members <= 1000 or not 1 <= args.repeat <= 10:
        p.error("--members must be 1..1000 and --repeat 1..10")
    cores = available_cores()
    out: dict[str, Any] = {"members": members, "cores": cores, "target": TARGET, "database": args.database,
                           "load_start": load_average()}  # fmt: skip
    log(f"{members} models per run on {cores} cores, {args.database}; load average {out['load_start']}")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="maestrale-fleet-training-") as name:
        tmp = Path(name)
        plants = write_plants(tmp / "data", members)
        spec = fleet_spec(tmp / "data", plants)
        sample = [m["plant"] for m in plants[:5]]
        wait_for_quiet(args.quiet_load)
        bare = {n: bare_fit_s(tmp / "data", sample, n) for n in sorted({1, cores})}
        out["bare_fit_s"] = {str(k): round(v, 3) for k, v in bare.items()}
        log("bare fit (read + features + fit): " + ", ".join(f"{v * 1000:.0f} ms on {k} thread(s)"
                                                             for k, v in bare.items()))  # fmt: skip
        for i in range(args.repeat):
            log(f"run {i + 1} of {args.repeat}")
            runs.append(
                {m: run_mode(m, spec, tmp, bare, cores, args.database, args.quiet_load) for m in modes}
            )
    out["runs"] = runs
    log("")
    log(f"{'mode':10s} {'1 worker':>10s} {'2 workers':>10s} {'speed-up':>9s}  models/h/core 1w | 2w")
    for run in runs:
        for mode, r in run.items():
            one, two = r["1w"], r["2w"]
            log(f"{mode:10s} {one['wall_s']:9.1f}s {two['wall_s']:9.1f}s {r['speedup']:8.2f}x  "
                f"{one['models_per_h_per_core']:8.0f} | {two['models_per_h_per_core']:.0f}")  # fmt: skip
    out["load_end"] = load_average()
    singles = [run["single"]["speedup"] for run in runs if "single" in run]
    out["speedup"] = statistics.median(singles) if singles else None
    out["met"] = None if not singles else out["speedup"] >= TARGET
    log(f"2 single-threaded workers vs 1: {singles} (median {out['speedup']}x, target >= {TARGET}x); "
        f"load {out['load_end']}")  # fmt: skip
    print(json.dumps(out))
    return 2 if args.check and out["met"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
