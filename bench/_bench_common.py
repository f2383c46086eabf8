"""Helpers shared by ``_mlflow_side.py`` and ``_maestrale_side.py``.

Stdlib + numpy + scikit-learn only: this module is imported from two different
virtual environments (``bench/.venv-mlflow`` and ``/work/main/.venv``), so it must
not depend on either tool.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "bench-ridge"
ALIAS = "champion"
N_SITES = 10
SEARCH_SITE = "s7"


def side_args(description: str) -> argparse.Namespace:
    """Parse the command line shared by both sides."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, type=Path, help=".npz with X (n x 20) and y (n,)")
    p.add_argument("--workdir", required=True, type=Path, help="scratch dir (created)")
    p.add_argument("--n-register", type=int, default=50)
    p.add_argument("--n-load", type=int, default=50)
    p.add_argument("--n-versions", type=int, default=1000, help="versions present when searching")
    p.add_argument("--n-search", type=int, default=30)
    p.add_argument("--n-import", type=int, default=7)
    p.add_argument("--n-default", type=int, default=5, help="MLflow default-path registrations")
    p.add_argument("--no-rest", action="store_true", help="skip the REST-server half")
    return p.parse_args()


def load_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as d:
        return np.asarray(d["X"]), np.asarray(d["y"])


def fit_models(X: np.ndarray, y: np.ndarray, n: int) -> list[Any]:
    """``n`` small Ridge models, alpha = 0.1 .. 0.1*n: identical on both sides."""
    from sklearn.linear_model import Ridge

    return [Ridge(alpha=0.1 * (i + 1)).fit(X, y) for i in range(n)]


def site_tag(i: int) -> str:
    return f"s{i % N_SITES}"


def median_ms(samples_s: Sequence[float]) -> float:
    return round(statistics.median(samples_s) * 1000.0, 3)


def summary(samples_s: Sequence[float]) -> dict[str, float | int]:
    """Median / p10 / p90 / min in milliseconds, plus the sample count."""
    ms = sorted(s * 1000.0 for s in samples_s)
    q = statistics.quantiles(ms, n=10) if len(ms) >= 2 else [ms[0]] * 9
    return {
        "median": round(statistics.median(ms), 3),
        "p10": round(q[0], 3),
        "p90": round(q[-1], 3),
        "min": round(ms[0], 3),
        "n": len(ms),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def wall_samples(fn: Callable[[], Any], n: int) -> list[float]:
    """Wall seconds of ``n`` calls of ``fn``, after one discarded (caches, connections, first call)."""
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def best_cpu_ms(fn: Callable[[], Any], n: int = 1000, rounds: int = 3) -> float:
    """CPU ms of one call of ``fn``: the best of ``rounds`` rounds of ``n`` calls (a floor's method)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return round(1000 * best, 4)


class FreshDatabase:
    """A new PostgreSQL database next to ``admin_url`` (name ``<prefix>_<random>``), dropped by ``drop()``."""

    def __init__(self, admin_url: str, prefix: str = "maestrale_bench") -> None:
        import uuid

        import sqlalchemy as sa

        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = admin_url.rsplit("/", 1)[0] + f"/{self.name}"

    def drop(self) -> None:
        """Dispose of Maestrale's pooled engine on it, then drop it (forcibly: stray sessions too)."""
        import sqlalchemy as sa

        from maestrale.platform.db import _engines

        engine = _engines.pop(self.url, None)
        if engine is not None:
            engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def import_time(python: str, stmt: str, reps: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Import cost of ``stmt`` in fresh interpreters.

    Method (same for both tools): ``time.perf_counter()`` around ``stmt`` *inside* a
    fresh subprocess, so interpreter start-up is excluded; one discarded warm-up run
    first (byte-code compilation, cold page cache).  Also reports the subprocess wall
    clock minus a bare ``python -c pass`` baseline, for context.
    """
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    run_env = {**os.environ, **(env or {})}

    def once(c: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        out = subprocess.run([python, "-c", c], capture_output=True, text=True, env=run_env, check=True)
        wall = time.perf_counter() - t0
        lines = out.stdout.strip().splitlines()
        return (float(lines[-1]) if lines else 0.0), wall

    once(code)
    inner, wall = zip(*(once(code) for _ in range(reps)), strict=True)
    base = [once("pass")[1] for _ in range(reps)]
    return {
        "median_s": round(statistics.median(inner), 4),
        "wall_minus_baseline_s": round(statistics.median(wall) - statistics.median(base), 4),
        "samples_s": [round(v, 4) for v in inner],
        "method": "perf_counter around the import inside a fresh subprocess; median; 1 warm-up discarded",
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[Any] | None = None) -> float:
    """Poll ``url`` until it answers 200; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return time.perf_counter() - t0
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def _group_pids(pgid: int) -> list[int]:
    """The processes of group ``pgid`` and their descendants in other groups (the workers of
    `maestrale serve --workers N` run in process groups of their own)."""
    parents: dict[int, int] = {}
    members = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(d.name)] = int(fields[1])  # ppid is field 4
        if int(fields[2]) == pgid:  # fields[0] is field 3 (state); pgrp is field 5
            members.add(int(d.name))
    grown = True
    while grown:
        more = {pid for pid, ppid in parents.items() if ppid in members} - members
        members |= more
        grown = bool(more)
    return sorted(members)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of group ``pgid``."""
    total = 0
    for pid in _group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def group_rss_mb(pgid: int) -> tuple[float, int]:
    """Resident memory (MiB) summed over group ``pgid``, and its process count."""
    kb, n = 0, 0
    for pid in _group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        n += 1
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kb += int(line.split()[1])
    return round(kb / 1024, 1), n


def wait_quiet(pgid: int, max_cores: float = 0.05, window_s: float = 1.0, timeout_s: float = 90.0) -> float:
    """Wait until the server's process group uses < ``max_cores`` CPU over ``window_s``.

    Servers that fork helper processes (MLflow 3 starts a job runner and several huey
    consumers) are still importing when the health check first answers; measuring then
    would charge their start-up to the first requests.  Returns the seconds waited.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        c0 = group_cpu_s(pgid)
        time.sleep(window_s)
        if (group_cpu_s(pgid) - c0) / window_s < max_cores:
            break
    return time.perf_counter() - t0


@contextlib.contextmanager
def server(
    cmd: list[str], env: dict[str, str], log_path: Path, health_url: str, timeout_s: float = 120.0
) -> Iterator[dict[str, float]]:
    """Start ``cmd`` in its own session, wait for ``health_url`` and CPU quiescence, stop it on exit.

    Yields a dict with ``startup_s`` (to first healthy answer), ``settle_s`` (further wait
    for quiescence), ``rss_mb``/``processes`` (idle footprint of the server's process group).
    """
    info: dict[str, float] = {}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            info["startup_s"] = round(wait_http(health_url, timeout_s, proc), 3)
            info["settle_s"] = round(wait_quiet(proc.pid), 3)
            info["rss_mb"], info["processes"] = group_rss_mb(proc.pid)
            yield info
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group created for ``proc`` (its workers too); SIGKILL stragglers."""
    pgid = proc.pid  # start_new_session=True: the group id is the server's pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=15)
    time.sleep(0.5)  # let workers of the group exit before a final sweep
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The driver reads the last stdout line."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True), flush=True)
