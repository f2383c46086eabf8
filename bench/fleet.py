"""The fleet loop at scale: `maestrale demo --fleet N` for N = 50, 200, 1,000 plants over a year.

Run with the project's interpreter (each N is its own `maestrale demo --fleet` process, so its CPU
figures are its own; results accumulate in --results, so N can be run one at a time)::

    .venv/bin/python bench/fleet.py                          # 50 and 200 plants, 365 days
    .venv/bin/python bench/fleet.py --plants 1000            # adds 1,000 to the table (hours)
    .venv/bin/python bench/fleet.py --table                  # only print the table of what ran

Data: the synthetic fleet of `maestrale.datasets.fleet` (seed 0, 20 % of the PV plants faulted:
abrupt loss, soiling, shading, meter offset, in turn), replayed day by day through the embedded
services (SQLite, memory:// bus, training jobs in child processes), the shipped default policy.

The table (stdout) puts each N beside the targets of issue 11 on 200 plants x 1 year:
- recall >= 0.9 for abrupt losses (>= 15 %) within 3 days of faulty actuals;
- <= 1 promotion per 10 healthy plant-years;
- the monitor's CPU per plant-day, and its growth from the smallest N (the anchor, x1.00): linear
  or better in models means the per-plant-day cost stays flat (x1.0 or less) as N grows.
Each run's summary JSON is one line of --results; its log (the demo's own output) sits beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("abrupt", "soiling", "shading", "offset")
TARGET_RECALL, TARGET_PROMOTIONS = 0.9, 1.0


def maestrale_command() -> list[str]:
    """The `maestrale` script of this interpreter's environment (as from a shell), else `python -m`."""
    script = Path(sys.executable).with_name("maestrale")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maestrale.cli.main"]


def run(plants: int, days: int, workers: int, seed: int, share: float, results: Path, keep: bool) -> dict:
    """One `maestrale demo --fleet` process; its summary (plus the load average) appended to results."""
    home = Path(tempfile.mkdtemp(prefix=f"maestrale-fleet-{plants}-"))
    summary = home / "summary.json"
    log = results.with_name(f"{results.stem}-{plants}x{days}.log")
    cmd = [
        *maestrale_command(), "demo", "--fleet", str(plants), "--days", str(days),
        "--workers", str(workers), "--seed", str(seed), "--fault-share", str(share),
        "--home", str(home / "demo"), "--summary", str(summary),
    ]  # fmt: skip
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    print(f"{plants} plants x {days} days: running, log in {log}", file=sys.stderr, flush=True)
    with log.open("w") as out:
        code = subprocess.call(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "140"}
        )
    if code != 0:
        raise SystemExit(f"{plants} plants: maestrale demo exited {code}; see {log}")
    s = json.loads(summary.read_text())
    s["bench"] = {
        "wall_s": round(time.perf_counter() - t0, 1), "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    if not keep:  # 1,000 plants x 1 year leave gigabytes of databases behind
        shutil.rmtree(home, ignore_errors=True)
    with results.open("a") as fh:
        fh.write(json.dumps(s) + "\n")
    return s


def table(rows: list[dict]) -> str:
    """The figures of each run side by side, the smallest N as the anchor of the monitor's growth."""
    latest = {(s["plants"], s["days"], s["workers"], s["seed"]): s for s in rows}  # a rerun replaces
    rows = sorted(latest.values(), key=lambda s: (s["days"], s["plants"]))
    anchor = rows[0]["cpu_s_per_plant_day"]["monitoring"] if rows else 0.0
    head = (
        f"{'plants':>6} {'days':>4} {'wall s':>7} {'load':>9} | {'CPU ms per plant-day':^28} | "
        f"{'recall (≤3 d) per fault kind':^47} | {'days to detect':^14} | {'promotions':>10} | "
        f"{'monitor':>7}"
    )
    sub = (
        f"{'':>6} {'':>4} {'':>7} {'':>9} | {'train':>6} {'monitor':>8} {'ingest':>6} {'fcst':>4} | "
        + " ".join(f"{k:>11}" for k in KINDS)
        + f" | {'median':>6} {'p90':>6} | {'/10 h-py':>10} | {'growth':>7}"
    )
    lines = [head, sub, "-" * len(sub)]
    for s in rows:
        c, d, b = s["cpu_s_per_plant_day"], s["detection"], s["bench"]
        recall = []
        for k in KINDS:
            r = d.get(k)
            recall.append(f"{r['recall']:.2f}({r['recall_within_3_days']:.2f})" if r and r["faults"] else "-")
        dd = d["overall"]["days_to_detect"]
        med = "-" if dd["median"] is None else f"{dd['median']:.1f}"
        p90 = "-" if dd["p90"] is None else f"{dd['p90']:.1f}"
        promos = s["healthy"]["promotions_per_10_plant_years"]
        growth = c["monitoring"] / anchor if anchor else float("nan")
        lines.append(
            f"{s['plants']:>6} {s['days']:>4} {b['wall_s']:>7.0f} "
            f"{b['load_before']:>4.1f}→{b['load_after']:<4.1f} | "
            f"{c['training'] * 1e3:>6.2f} {c['monitoring'] * 1e3:>8.2f} {c['ingest'] * 1e3:>6.2f} "
            f"{c['forecast'] * 1e3:>4.1f} | " + " ".join(f"{r:>11}" for r in recall)
            + f" | {med:>6} {p90:>6} | {promos if promos is not None else '-':>10} | ×{growth:>6.2f}"
        )  # fmt: skip
    lines.append(
        f"targets (200 plants x 365 days): abrupt recall ≥ {TARGET_RECALL} within 3 days; ≤ "
        f"{TARGET_PROMOTIONS:g} promotion per 10 healthy plant-years; monitor growth ≤ ×1 (linear in models)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, nargs="*", default=[50, 200], help="fleet sizes to run")
    parser.add_argument("--days", type=int, default=365, help="days of the second year to replay")
    parser.add_argument("--workers", type=int, default=2, help="training jobs at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-share", type=float, default=0.2)
    parser.add_argument(
        "--results", type=Path, default=Path("bench/results/fleet.jsonl"), help="summaries, one per line"
    )
    parser.add_argument("--table", action="store_true", help="print the table of --results and exit")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (registry, databases)")
    args = parser.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for n in args.plants:
            s = run(n, args.days, args.workers, args.seed, args.fault_share, args.results, args.keep)
            print(f"{n} plants: {s['bench']['wall_s']:.0f} s", file=sys.stderr, flush=True)
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
