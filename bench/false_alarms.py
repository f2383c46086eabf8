"""False-alarm rate of the default monitoring policy: alert episodes per plant-year on the clean replay.

Run with the project's interpreter::

    .venv/bin/python bench/false_alarms.py                    # the demo's replay, 2012-04-01 → 2013-12-31
    .venv/bin/python bench/false_alarms.py --end 2012-12-31   # the default `make demo` period only

Data: `maestrale demo --no-fault`, i.e. NREL system 50 (the real measured series, no injected
fault), a day-ahead model trained by the training service and served by the model server, each day's
forecast logged and each day's actuals a day late; the monitor evaluates every day with the shipped
policy (`maestrale/monitoring/default_policy.yaml`) and acts on it (a retrain condition that fires
retrains; the champion/challenger rule decides). Nothing is wrong with the plant, so every episode
(`maestrale.monitoring.episodes`: repeated breaches of one condition, one alert) is a false alarm —
or a real change of the plant that the injected-fault replay would not call one (snow, an outage).

Human lines go to stderr, ONE JSON line to stdout: {"start", "end", "plant_years", "evaluations",
"episodes": {condition: n}, "per_plant_year": {condition: rate}, "breaches": {condition: n},
"retrains", "promotions", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=None, help="first replayed day")
    parser.add_argument(
        "--end", type=date.fromisoformat, default=date(2013, 12, 31), help="last replayed day"
    )
    parser.add_argument("--home", type=Path, default=None, help="demo folder (default: a temporary one)")
    args = parser.parse_args()

    from rich.console import Console

    from maestrale.config import load_settings
    from maestrale.demo import run_demo
    from maestrale.demo.scenario import MODEL, REPLAY_START
    from maestrale.monitoring.policy import default_policy
    from maestrale.monitoring.store import MonitorStore

    start = args.start or REPLAY_START
    home = args.home or Path(tempfile.mkdtemp(prefix="maestrale-false-alarms-"))
    t0 = time.perf_counter()
    quiet = Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115 (the demo's lines: noise here)
    summary = run_demo(
        home, fault_start=None, replay_start=start, replay_end=args.end, console=quiet, report=False
    )
    seconds = time.perf_counter() - t0
    settings = load_settings(home=home)  # the demo's own database
    assert settings.database_url
    store = MonitorStore(settings.database_url)
    episodes = store.episodes(MODEL, limit=100_000)
    breaches = Counter(b["condition"] for b in store.breaches(MODEL, limit=1_000_000))
    years = ((args.end - start).days + 1) / 365.25
    conditions = [c.name for c in default_policy().conditions]
    counts = Counter(e["condition"] for e in episodes)
    out = {
        "start": start.isoformat(),
        "end": args.end.isoformat(),
        "plant_years": round(years, 3),
        "evaluations": summary["evaluations"],
        "episodes": {c: counts.get(c, 0) for c in conditions},
        "per_plant_year": {c: round(counts.get(c, 0) / years, 2) for c in conditions},
        "breaches": {c: breaches.get(c, 0) for c in conditions},
        "episode_list": [
            {
                "condition": e["condition"],
                "start": e["started_at"].date().isoformat(),
                "end": e["ended_at"].date().isoformat() if e["ended_at"] else None,
                "breaches": e["breaches"],
                "peak": round(e["peak_value"], 4),
                "metric": e["peak_metric"],
            }
            for e in episodes
        ],
        "retrains": summary["retrains"],
        "promotions": summary["promotions"],
        "seconds": round(seconds, 1),
    }
    for c in conditions:
        print(
            f"{c:<22} {counts.get(c, 0):>3} episodes ({breaches.get(c, 0)} daily breaches) = "
            f"{out['per_plant_year'][c]:.2f} per plant-year",
            file=sys.stderr,
        )
    print(f"{years:.2f} plant-years, {summary['evaluations']} evaluations, {seconds:.0f} s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
