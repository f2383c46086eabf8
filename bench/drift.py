"""Drift of 1M rows × 20 features: Maestrale vs Evidently 0.7 DataDriftPreset vs plain numpy/scipy.

Run with the project's interpreter (Evidently runs in its own venv, made by bench/setup_evidently.sh)::

    bench/setup_evidently.sh && .venv/bin/python bench/drift.py   # ~2-3 min on 2 cores, Evidently most of it
    .venv/bin/python bench/drift.py --quick                        # 100k rows, no Evidently: a smoke run
    .venv/bin/python bench/drift.py --check                        # exit 2 when a target is missed

Data: deterministic (seeded PCG64) reference and current frames of ROWS × 20 float64 features of mixed
shapes (normal, lognormal, gamma, ties from rounding, PV-like half zeros, integers…); the current frame
draws 5 features (SHIFTED) from moved distributions, every other feature from the reference's. Written
once to .npy files; every tool reads the same files, and each runs in its own subprocess so that its
peak RSS (ru_maxrss of that process) is its own. Timed: the drift computation only, data in memory.

* maestrale: `drift_report(profile, current)`, the monitor's call. The profile (quantile bins plus a
  2,048-value reference sample per column) is built at training time: timed apart ("profile" line),
  in another process, and the monitor holds only the current window and the profile JSON. PSI, KS +
  p-value, Wasserstein (raw and / reference std) and JS for each feature; KS and Wasserstein against
  the profile's sample. Flags: PSI ≥ 0.2 or Wasserstein ≥ 0.1 std.
* maestrale-matrix: `drift_report(reference_frame, current)`: the same statistics against the full
  1M-row reference (what numpy below computes), holding both frames like the other two.
* numpy: per column scipy `ks_2samp`, `wasserstein_distance` / `np.std`, PSI on `np.histogram` over
  the reference's decile edges (outer edges opened to ±inf), `jensenshannon(base=2)`; same flags.
* evidently: `Report([DataDriftPreset()]).run(current, reference)`. Evidently picks a test per column:
  for numerical columns with > 1,000 reference rows and > 5 distinct values, Wasserstein distance
  normed by the reference std, drifted at ≥ 0.1 (so one statistic, where the others compute four);
  it also renders the per-column distributions it keeps in the snapshot.

Targets: maestrale ≥ 20× faster than Evidently and ≤ 1.5× numpy/scipy's time. Human lines go to
stderr, ONE JSON line to stdout: {"rows", "features", "shifted", "sides": {side: {"seconds", "peak_mb",
"baseline_mb", "flagged", "flags_match"}}, "ratios": {...}, "agreement": {...}, "met": bool}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
EVIDENTLY_PY = HERE / ".venv-evidently" / "bin" / "python"
SEED = 20_261_126
N_FEATURES = 20
SHIFTED = ("f02", "f05", "f08", "f11", "f16")
NAMES = [f"f{i:02d}" for i in range(N_FEATURES)]
PSI_LIMIT, WNORM_LIMIT = 0.2, 0.1  # maestrale's default flags, used for the numpy reference too
TARGET_VS_EVIDENTLY, TARGET_VS_NUMPY = 20.0, 1.5
# DO_NOT_TRACK: the convention; ITERATIVE_DO_NOT_TRACK: the switch Evidently reads (evidently.telemetry)
TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "ITERATIVE_DO_NOT_TRACK": "1"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def feature(rng: np.random.Generator, i: int, n: int, shifted: bool) -> np.ndarray:
    """Feature i: the reference's distribution, or its moved version for the SHIFTED ones."""
    s = shifted and NAMES[i] in SHIFTED
    match i:
        case 0 | 14:
            return rng.normal(0.0 if i == 0 else -3.0, 1.0 if i == 0 else 2.0, n)
        case 1:
            return rng.normal(50, 10, n)
        case 2:
            return rng.lognormal(0.0, 0.7 if s else 0.5, n)  # wider
        case 3 | 15:
            return rng.uniform(0, 1, n) if i == 3 else rng.uniform(-1, 1, n)
        case 4:
            return rng.gamma(2.0, 2.0, n)
        case 5:
            return np.round(rng.normal(17.0 if s else 15.0, 5.0, n), 1)  # temperature, 2 °C warmer
        case 6:
            return rng.exponential(1.0, n)
        case 7:
            return rng.weibull(2.0, n) * 6
        case 8:  # PV power: zero at night; more daylight hours in the current window
            return np.where(rng.uniform(size=n) < (0.30 if s else 0.45), 0.0, rng.uniform(0, 900, n))
        case 9:
            return rng.standard_t(5, n)
        case 10:
            return rng.beta(2, 5, n)
        case 11:
            return rng.normal(1020.0 if s else 1000.0, 50.0, n)  # +0.4 std
        case 12:
            return rng.poisson(4, n).astype("float64")
        case 13:
            return rng.lognormal(2.0, 1.0, n)
        case 16:
            return rng.gamma(5.0, 1.2 if s else 1.0, n)  # scaled
        case 17:
            return np.round(rng.uniform(0, 360, n))  # wind direction in whole degrees
        case 18:
            return rng.chisquare(3, n)
        case _:
            return rng.laplace(0, 1, n)


def make_data(workdir: Path, rows: int) -> None:
    stamp = workdir / f"data-{rows}-{SEED}.ok"
    if stamp.exists():
        return
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    for part, shifted in (("reference", False), ("current", True)):
        # columns-first, so that each column is one contiguous block on disk and in memory
        data = np.empty((N_FEATURES, rows))
        for i in range(N_FEATURES):
            data[i] = feature(rng, i, rows, shifted)
        np.save(workdir / f"{part}.npy", data)
    stamp.touch()
    log(f"data: 2 × {rows:,} rows × {N_FEATURES} features in {time.perf_counter() - t0:.1f} s")


def load_frame(workdir: Path, part: str) -> Any:
    import pandas as pd

    data = np.load(workdir / f"{part}.npy")
    # zero-copy: pandas keeps a float frame as one (columns × rows) block, which is this array, so
    # loading has no transient second copy and the peak above the loaded data is the tool's own
    return pd.DataFrame(data.T, columns=NAMES, copy=False)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ---- the sides: each runs in its own process, prints one JSON line ----


def side_profile(workdir: Path) -> dict[str, Any]:
    from maestrale.stats.profile import reference_profile

    ref = load_frame(workdir, "reference")
    base = peak_mb()
    t0 = time.perf_counter()
    # the bench compares features only: no predictions to profile
    prof = reference_profile(ref, np.empty(0))
    seconds = time.perf_counter() - t0
    text = json.dumps(prof)
    (workdir / "profile.json").write_text(text)
    return {"seconds": seconds, "baseline_mb": base, "json_kb": len(text) / 1024}


def side_maestrale(workdir: Path, matrix: bool = False) -> dict[str, Any]:
    from maestrale.stats.drift import drift_report

    cur = load_frame(workdir, "current")
    ref = load_frame(workdir, "reference") if matrix else json.loads((workdir / "profile.json").read_text())
    base = peak_mb()
    t0 = time.perf_counter()
    report = drift_report(ref, cur)
    seconds = time.perf_counter() - t0
    stats = {
        f.name: {"ks": f.ks, "wasserstein_norm": f.wasserstein_norm, "psi": f.psi, "js": f.js}
        for f in report.features
    }
    return {"seconds": seconds, "baseline_mb": base, "flagged": report.drifted_features, "stats": stats}


def side_numpy(workdir: Path) -> dict[str, Any]:
    from scipy import stats as st
    from scipy.spatial.distance import jensenshannon

    ref, cur = load_frame(workdir, "reference"), load_frame(workdir, "current")
    base = peak_mb()
    t0 = time.perf_counter()
    out: dict[str, dict[str, float]] = {}
    for name in NAMES:
        a, b = ref[name].to_numpy("float64"), cur[name].to_numpy("float64")
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        ks = st.ks_2samp(a, b)
        w = st.wasserstein_distance(a, b)
        edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf  # open-ended outer bins: new values out of range still count
        pa, pb = np.histogram(a, edges)[0], np.histogram(b, edges)[0]
        p, q = np.maximum(pa / pa.sum(), 1e-4), np.maximum(pb / pb.sum(), 1e-4)
        out[name] = {
            "ks": float(ks.statistic),
            "ks_pvalue": float(ks.pvalue),
            "wasserstein_norm": float(w / np.std(a)),
            "psi": float(np.sum((q - p) * np.log(q / p))),
            "js": float(jensenshannon(pa, pb, base=2)),
        }
    seconds = time.perf_counter() - t0
    flagged = [n for n, s in out.items() if s["psi"] >= PSI_LIMIT or s["wasserstein_norm"] >= WNORM_LIMIT]
    return {"seconds": seconds, "baseline_mb": base, "flagged": flagged, "stats": out}


def side_evidently(workdir: Path) -> dict[str, Any]:
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur = load_frame(workdir, "reference"), load_frame(workdir, "current")
    base = peak_mb()
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    result = snapshot.dict()
    seconds = time.perf_counter() - t0
    flagged, methods = [], set()
    for m in result["metrics"]:  # one ValueDrift per column: {"config": {column, method, threshold}, "value"}
        cfg = m.get("config", {})
        if str(cfg.get("type", "")).endswith(":ValueDrift"):
            methods.add(cfg["method"])
            value, threshold = float(m["value"]), float(cfg["threshold"])
            # Evidently flags a p-value below the threshold, a distance at or above it
            if (value < threshold) if "p_value" in cfg["method"] else (value >= threshold):
                flagged.append(cfg["column"])
    return {
        "seconds": seconds,
        "baseline_mb": base,
        "flagged": sorted(flagged),
        "methods": sorted(methods),
        "version": evidently.__version__,
    }


SIDES = {
    "profile": side_profile,
    "maestrale": side_maestrale,
    "maestrale-matrix": lambda w: side_maestrale(w, matrix=True),
    "numpy": side_numpy,
    "evidently": side_evidently,
}


def run_side(side: str, workdir: Path, python: str) -> dict[str, Any]:
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONWARNINGS": "ignore"}
    cmd = [python, str(Path(__file__).resolve()), "--side", side, "--workdir", str(workdir)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"side {side} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def agreement(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Largest absolute difference per statistic between two sides' per-feature values."""
    keys = ("ks", "wasserstein_norm", "psi", "js")
    return {k: max(abs(a["stats"][n][k] - b["stats"][n][k]) for n in NAMES) for k in keys}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="100k rows, no Evidently")
    p.add_argument("--no-evidently", action="store_true")
    p.add_argument("--check", action="store_true", help="exit 2 when a target is missed")
    p.add_argument("--workdir", type=Path, help="where the data files go (default: a temporary dir)")
    p.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:  # child process: run one side, report one JSON line
        out = SIDES[args.side](args.workdir)
        out["peak_mb"] = peak_mb()
        print(json.dumps(out))
        return 0

    rows = 100_000 if args.quick else args.rows
    with_evidently = not (args.quick or args.no_evidently)
    if with_evidently and not EVIDENTLY_PY.exists():
        log("bench/.venv-evidently missing: run bench/setup_evidently.sh (or pass --no-evidently)")
        return 1
    with tempfile.TemporaryDirectory(prefix="maestrale-drift-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        make_data(workdir, rows)
        sides: dict[str, dict[str, Any]] = {}
        order = ["profile", "maestrale", "maestrale-matrix", "numpy"] + (
            ["evidently"] if with_evidently else []
        )
        for side in order:
            python = str(EVIDENTLY_PY) if side == "evidently" else sys.executable
            sides[side] = r = run_side(side, workdir, python)
            extra = f", profile JSON {r['json_kb']:.0f} kB" if side == "profile" else ""
            if "flagged" in r:
                r["flags_match"] = sorted(r["flagged"]) == sorted(SHIFTED)
                extra = f", flags {r['flagged']} ({'right' if r['flags_match'] else 'WRONG'})"
            if "methods" in r:
                extra += f", evidently {r['version']} methods {r['methods']}"
            log(
                f"{side:>16}: {r['seconds']:7.2f} s, peak {r['peak_mb']:6.0f} MB "
                f"(data loaded: {r['baseline_mb']:.0f} MB){extra}"
            )
    m, n = sides["maestrale"]["seconds"], sides["numpy"]["seconds"]
    ratios = {"maestrale_over_numpy": m / n, "matrix_over_numpy": sides["maestrale-matrix"]["seconds"] / n}
    if with_evidently:
        ratios["evidently_over_maestrale"] = sides["evidently"]["seconds"] / m
        ratios["evidently_over_matrix"] = sides["evidently"]["seconds"] / sides["maestrale-matrix"]["seconds"]
    agree = {
        "matrix_vs_numpy": agreement(sides["maestrale-matrix"], sides["numpy"]),
        "profile_vs_numpy": agreement(sides["maestrale"], sides["numpy"]),
    }
    met = ratios["maestrale_over_numpy"] <= TARGET_VS_NUMPY and all(
        s.get("flags_match", True) for s in sides.values()
    )
    if with_evidently:
        met = met and ratios["evidently_over_maestrale"] >= TARGET_VS_EVIDENTLY
    log("ratios: " + ", ".join(f"{k} {v:.3g}" for k, v in ratios.items()) + f"; targets met: {met}")
    for k, v in agree.items():
        log(f"max |difference| {k}: " + ", ".join(f"{s} {d:.2g}" for s, d in v.items()))
    for s in sides.values():
        s.pop("stats", None)
    summary = {"rows": rows, "features": N_FEATURES, "shifted": list(SHIFTED), "sides": sides}
    print(json.dumps({**summary, "ratios": ratios, "agreement": agree, "met": met}))
    return 2 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
