"""Monitor scale benchmark: the cost of a tick per model as the fleet grows, and two monitors sharing it.

    .venv/bin/python bench/monitor_scale.py               # fleets of 50 and 200 models, ~2 min on 2 cores
    .venv/bin/python bench/monitor_scale.py --sizes 50,200,1000

Each fleet is N models on a fresh PostgreSQL database (one small regression registered under N names,
one plant each) with 14 days of hourly predictions and actuals, and the default policy (performance
over 3D and 7D, drift over 7D). Measured in separate processes, each timed once:

* two monitor processes start and tick once together (cold: first loads, lazy imports; not reported);
* due tick: a 15th day logged, one of them (warm) evaluates the whole fleet: seconds per model;
* two monitors: a 16th day logged, both tick at the same moment and share the fleet by leases
  (`maestrale.monitoring.leases`): wall time from the start signal until both are done, and how many
  models each evaluated;
* idle tick: nothing due (the schedule check of every model), and the process's peak RSS.

Anchor: a bare SQL read of each model's 7-day window joined to its actuals (psycopg, nothing else):
the floor of an evaluation that reads its data. Then correctness: every (model, step, kind, window) has
exactly one evaluation row. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

START = datetime(2024, 6, 1, tzinfo=UTC)
DAYS = 14


def child(url: str, storage: str) -> None:
    """One monitor process: says ready, then ticks on each `tick` line of stdin and prints a JSON line."""
    from maestrale import Registry
    from maestrale.monitoring.monitor import Monitor
    from maestrale.monitoring.policy import default_policy
    from maestrale.monitoring.store import MonitorStore

    monitor = Monitor(
        MonitorStore(url), Registry(database_url=url, storage_url=storage), None, [default_policy()]
    )
    print("ready", flush=True)
    for _line in sys.stdin:
        t0 = time.perf_counter()
        evaluated = len(monitor.tick())
        seconds = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps({"seconds": seconds, "evaluated": evaluated, "end": time.time(), "rss_mb": rss_mb}),
            flush=True,
        )


class MonitorProcess:
    """A monitor process driven by the parent: `tick(*monitors)` starts their ticks at the same moment."""

    def __init__(self, url: str, storage: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", url, storage],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @staticmethod
    def tick(*monitors: MonitorProcess) -> tuple[float, list[dict[str, Any]]]:
        """Wall seconds from the start signal until every one is done, and what each did."""
        go = time.time()
        for m in monitors:
            assert m.proc.stdin is not None
            m.proc.stdin.write("tick\n")
            m.proc.stdin.flush()
        done = [json.loads(m.proc.stdout.readline()) for m in monitors]  # type: ignore[union-attr]
        return max(d["end"] for d in done) - go, done

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def log_day(store: Any, names: list[str], model: Any, day: int) -> None:
    import numpy as np
    import pandas as pd

    idx = pd.date_range(START + timedelta(days=day), periods=24, freq="h")
    hours = np.arange(24)
    for i, name in enumerate(names):
        plant = f"plant-{i:04d}"
        cloud = 0.6 + 0.4 * (((day + i) * 7919) % 10) / 10
        ghi = np.clip(np.sin((hours - 5) / 14 * np.pi), 0, None) * 900 * cloud
        X = pd.DataFrame({"ghi": ghi, "temp": 20 + 5 * np.sin(hours / 24 * 2 * np.pi)}, index=idx)
        pred = model.predict(X)
        store.log_predictions(
            name, 1,
            [{"record_id": f"{plant}-{t.isoformat()}", "entity": plant, "target_time": t.isoformat(),
              "issued_at": (t - timedelta(hours=12)).isoformat(), "features": {"ghi": g, "temp": tc},
              "prediction": float(p)} for t, g, tc, p in zip(idx, ghi, X["temp"], pred, strict=True)],
        )  # fmt: skip
        actual = 0.004 * ghi * (1 + 0.02 * np.sin(hours + i))
        store.log_actuals(
            [
                {"entity": plant, "target_time": t.isoformat(), "value": float(v)}
                for t, v in zip(idx, actual, strict=True)
            ]
        )


def anchor(store: Any, names: list[str], as_of: datetime) -> float:
    """Seconds per model of a bare SQL read of its 7-day window joined to its actuals."""
    sql = (
        "SELECT p.target_time, p.prediction, a.value, p.features FROM predictions p JOIN actuals a "
        "ON a.entity = p.entity AND a.target_time = p.target_time "
        "WHERE p.model = %s AND p.target_time > %s AND p.target_time <= %s"
    )
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        for name in names:
            cur.execute(sql, (name, as_of - timedelta(days=7), as_of))
            cur.fetchall()
        return (time.perf_counter() - t0) / len(names)
    finally:
        raw.close()


def counts(store: Any) -> set[int]:
    from sqlalchemy import text

    q = 'SELECT count(*) FROM monitor_evaluations GROUP BY model, as_of, kind, "window"'
    with store.engine.connect() as conn:
        return set(conn.execute(text(q)).scalars())


def fleet(n: int, tmp: Path) -> dict[str, Any]:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from maestrale import Registry
    from maestrale.monitoring.store import MonitorStore
    from maestrale.stats.profile import reference_profile
    from tests.conftest import fresh_pg_database

    with fresh_pg_database("maestrale_bench_monitor") as url:
        storage = f"file://{tmp}/artifacts-{n}"
        registry = Registry(database_url=url, storage_url=storage)
        X = pd.DataFrame({"ghi": [0.0, 300.0, 600.0, 900.0] * 50, "temp": [15.0, 20.0, 25.0, 22.0] * 50})
        model = LinearRegression().fit(X, 0.004 * X["ghi"])
        profile = reference_profile(X, model.predict(X))
        names = [f"pv-{i:04d}" for i in range(n)]
        spec = {"capacity": 3.6, "features": ["ghi", "temp"], "target": "power_kw"}
        for name in names:
            registry.register(name, model, metrics={"nmae": 0.02, "rmse": 0.1}, input_example=X.head(),
                              spec=spec, profile=profile)  # fmt: skip
        store = MonitorStore(url)
        for day in range(DAYS):
            log_day(store, names, model, day)
        a, b = MonitorProcess(url, storage), MonitorProcess(url, storage)
        cold_pair, _ = MonitorProcess.tick(a, b)  # day 14: both start cold (first loads, lazy imports)
        log_day(store, names, model, DAYS)
        one_s, (one,) = MonitorProcess.tick(a)  # day 15: one warm monitor, the whole fleet
        log_day(store, names, model, DAYS + 1)
        two_s, two = MonitorProcess.tick(a, b)  # day 16: two warm monitors share it
        idle_s, (idle,) = MonitorProcess.tick(a)  # nothing due
        a.close()
        b.close()
        result = {
            "models": n,
            "due_s_per_model": one_s / n,
            "idle_s_per_model": idle_s / n,
            "rss_mb": idle["rss_mb"],
            "one_monitor_s": one_s,
            "two_monitors_s": two_s,
            "two_cold_s": cold_pair,
            "split": [d["evaluated"] for d in two],
            "anchor_s_per_model": anchor(store, names, START + timedelta(days=DAYS + 2, hours=-1)),
            "evaluations_per_step": sorted(counts(store)),
        }
        assert one["evaluated"] == n and sum(d["evaluated"] for d in two) == n and idle["evaluated"] == 0
        store.engine.dispose()
        return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="50,200", help="fleet sizes, comma-separated")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child[0], args.child[1])
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(fleet(n, Path(tmp)))
            r = rows[-1]
            print(f"{n} models done: {r['due_s_per_model'] * 1000:.1f} ms a due model", file=sys.stderr)
    head = ("models", "due ms/model", "idle ms/model", "anchor ms/model", "peak RSS MB", "1 monitor s",
            "2 monitors s", "split", "evals/step")  # fmt: skip
    print("  ".join(f"{h:>13}" for h in head))
    for r in rows:
        cells = (
            r["models"], f"{r['due_s_per_model'] * 1000:.1f}", f"{r['idle_s_per_model'] * 1000:.2f}",
            f"{r['anchor_s_per_model'] * 1000:.2f}", f"{r['rss_mb']:.0f}", f"{r['one_monitor_s']:.1f}",
            f"{r['two_monitors_s']:.1f}", "/".join(map(str, r["split"])),
            ",".join(map(str, r["evaluations_per_step"])),
        )  # fmt: skip
        print("  ".join(f"{c:>13}" for c in cells))
    print(json.dumps({"bench": "monitor_scale", "rows": rows}))


if __name__ == "__main__":
    main()
