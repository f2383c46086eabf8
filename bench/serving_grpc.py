"""V2 over gRPC alone: Maestrale's `--grpc-port` against MLServer 1.7.1's gRPC server, and the floor.

``bench/serving.py`` runs the same 1-row gRPC load (``maestrale`` and both MLServers, beside their
REST figures, in the same run); this script is the gRPC part on its own, with ``maestrale-nolog``::

    /work/main/.venv/bin/python bench/serving_grpc.py             # 10 s per server
    /work/main/.venv/bin/python bench/serving_grpc.py --duration 5 --only maestrale,mlserver-runtime

The same model, registry and servers as ``bench/serving.py`` (``_serving_servers.py``; each server
pinned to CPU 0, one process): ``maestrale`` and ``maestrale-nolog`` with ``--grpc-port``,
``mlserver-runtime`` and ``mlserver-sklearn`` on the gRPC port MLServer always serves. The request,
the load (``--concurrency`` blocking calls on one channel from a child process pinned to CPU 1,
1 s warm-up, ``--duration`` s measured) and the floor (decode + predict in-process) are
``_serving_grpc_load.py``'s. ``CPU ratio`` is the cheaper MLServer's CPU per request over this
server's; ``x floor`` the server's CPU ms/req over the floor. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving_grpc_load import grpc_floor_ms, measure_grpc
from _serving_servers import ensure_mlserver, log, prepare, running

SERVERS = ("maestrale", "maestrale-nolog", "mlserver-runtime", "mlserver-sklearn")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SERVERS)}")
    args = p.parse_args()
    srv_args = argparse.Namespace(broker_url=None)  # what server_command / server_env read
    ensure_mlserver()
    load_start = os.getloadavg()
    wd = Path(tempfile.mkdtemp(prefix="maestrale-serving-grpc-"))
    try:
        prep = prepare(wd, "ridge")
        floor = grpc_floor_ms(prep)
        results: dict[str, Any] = {}
        for name in args.only.split(",") if args.only else SERVERS:
            log(f"[{name}] gRPC ...")
            with running(name, wd, prep, srv_args, {0}, grpc=True, tag="-grpc") as srv:
                assert srv.grpc_port is not None
                results[name] = measure_grpc(srv.proc.pid, srv.grpc_port, prep, {1}, duration=args.duration,
                                             warmup=1.0, concurrency=args.concurrency)  # fmt: skip
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    mls = [v["cpu_ms_per_req"] for k, v in results.items() if k.startswith("mlserver")]
    anchor = min(mls) if mls else None
    log(f"{'server (gRPC)':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}{'CPU ratio':>10}"
        f"{'x floor':>8}")  # fmt: skip
    for name, v in results.items():
        v["cpu_ratio_vs_mlserver"] = round(anchor / v["cpu_ms_per_req"], 2) if anchor else None
        v["x_floor"] = round(v["cpu_ms_per_req"] / floor, 2)
        log(f"{name:<18}{v['rps']:>8.0f}{v['p50_ms']:>8.2f}{v['p99_ms']:>8.2f}{v['cpu_ms_per_req']:>11.3f}"
            f"{v['cpu_ratio_vs_mlserver'] or 0:>9.2f}x{v['x_floor']:>7.1f}x")  # fmt: skip
    log(f"floor (decode + predict in-process): {floor:.3f} ms CPU")
    load_end = os.getloadavg()
    print(json.dumps({"grpc": results, "floor_ms": floor, "loadavg": [load_start[0], load_end[0]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
