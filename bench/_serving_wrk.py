"""wrk (C, Debian's ``wrk`` package) as the closed-loop load generator of ``bench/serving.py``'s
``--workers 2`` scaling: ``run_wrk("127.0.0.1", 8000, path, body, duration=10, concurrency=8)``.

On a 2-core machine the load generator shares the cores with the two server processes, so what it
costs per request comes off their throughput. Measured beside the servers: wrk took 4–11 % of a core
at 2,000–4,000 req/s, the asyncio client of ``_serving_load.py`` 14–30 %. Both runs of the ratio
(one worker, two workers) use it.
Every response's status is checked by wrk (a non-2xx, a connect, read, write or timeout error counts
as an error); the caller checks one answer's prediction before the load (``check_answer``). A Lua
``response`` hook checking every body costs wrk ~20 µs a request, as much as the asyncio client.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("MAESTRALE %d %d %.1f %.1f %.1f\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"""
RESULT = re.compile(r"^MAESTRALE (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)$", re.M)


def wrk_path() -> str | None:
    """The wrk binary, installed with apt-get when missing (as root or with sudo); None if it cannot be."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if _is_root() else ["sudo", "-n"]
    for cmd in ([*sudo, "apt-get", "install", "-y", "wrk"], [*sudo, "apt-get", "update"],
                [*sudo, "apt-get", "install", "-y", "wrk"]):  # fmt: skip
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr, check=False)
        if shutil.which("wrk"):
            break
    return shutil.which("wrk")


def _is_root() -> bool:
    return os.geteuid() == 0


def _lua(text: str) -> str:
    """A Lua string literal of ASCII `text` (JSON bodies are ASCII here)."""
    return json.dumps(text, ensure_ascii=True)


def run_wrk(
    host: str, port: int, path: str, body: bytes, *, duration: float, concurrency: int
) -> dict[str, Any]:
    """``concurrency`` keep-alive connections on one wrk thread for ``duration`` s: req/s, p50/p99 ms,
    errors (a non-2xx status, a socket error or a timeout), wrk's own CPU share (user + system, %)."""
    exe = wrk_path()
    if exe is None:
        raise RuntimeError("wrk is not installed and apt-get could not install it: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="maestrale-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(SCRIPT.format(body=_lua(body.decode("ascii"))))
        cmd = [exe, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "-s", str(script),
               f"http://{host}:{port}{path}"]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()  # wrk exits after -d seconds
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here: its own CPU, not all children's
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    found = RESULT.search(out)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {out[-500:]}")
    requests, bad, p50_us, p99_us, duration_us = found.groups()
    seconds = float(duration_us) / 1e6
    return {
        "client": "wrk",
        "requests": int(requests),
        "errors": int(bad),
        "rps": round(int(requests) / seconds, 1),
        "p50_ms": round(float(p50_us) / 1000, 3),
        "p99_ms": round(float(p99_us) / 1000, 3),
        "wall_s": round(seconds, 2),
        "client_cpu_pct": round(100 * (usage.ru_utime + usage.ru_stime) / wall, 1),
        "error_samples": [out[-300:]] if int(bad) else [],
    }
