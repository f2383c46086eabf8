"""V2 over gRPC: Maestrale's `--grpc-port` against MLServer 1.7.1's gRPC server, and the in-process floor.

Run with the project's interpreter (MLServer's venv is made by ``bench/setup_mlserver.sh``)::

    /work/main/.venv/bin/python bench/serving_grpc.py             # 10 s per server
    /work/main/.venv/bin/python bench/serving_grpc.py --duration 5 --only maestrale,mlserver-runtime

The same model, registry and servers as ``bench/serving.py`` (its ``prepare`` and ``server_command``;
each server pinned to CPU 0, one process): ``maestrale`` and ``maestrale-nolog`` with ``--grpc-port``,
``mlserver-runtime`` and ``mlserver-sklearn`` on the gRPC port MLServer always serves. Every server
gets the same ``ModelInferRequest``: one FP64 ``[1]`` raw tensor per feature, request parameter
``content_type = "pd"``; the answer is checked against ``model.predict``. The load: ``--concurrency``
blocking calls in flight on one channel, from threads of a child process pinned to CPU 1, for
``--duration`` s after 1 s of warm-up (closed loop). Server CPU (user + system of its process group,
from /proc) over the window gives ``CPU ms/req``; ``CPU ratio`` is the best MLServer's CPU per
request over this server's. ``floor`` is the in-process cost of the same request's decode (the raw
tensors into one array, ``maestrale.serving.fast_infer``) plus ``model.predict``: the physical limit
of any server, printed with each server's ratio to it. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
SERVERS = ("maestrale", "maestrale-nolog", "mlserver-runtime", "mlserver-sklearn")


def grpc_request(body: dict[str, Any]) -> Any:
    """The V2 gRPC request of bench/serving.py's JSON body: raw FP64 tensors, content type pd."""
    from maestrale.serving.proto import grpc_predict_v2_pb2 as pb

    return pb.ModelInferRequest(
        model_name="pv-nrel-50", parameters={"content_type": pb.InferParameter(string_param="pd")},
        inputs=[pb.ModelInferRequest.InferInputTensor(name=i["name"], datatype="FP64", shape=[1])
                for i in body["inputs"]],
        raw_input_contents=[np.asarray(i["data"], dtype=np.float64).tobytes() for i in body["inputs"]],
    )  # fmt: skip


def load(port: int, pgid: int, body: dict[str, Any], duration: float, concurrency: int) -> dict[str, Any]:
    """Closed-loop gRPC load (run in the child process): req/s, p50/p99 and the server's CPU ms/req."""
    import grpc
    from _bench_common import group_cpu_s

    from maestrale.serving.proto import grpc_predict_v2_pb2_grpc as pbg

    req = grpc_request(body)
    stub = pbg.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    answer = float(np.frombuffer(stub.ModelInfer(req).raw_output_contents[0])[0])
    latencies: list[float] = []
    lock, stopping = threading.Lock(), threading.Event()

    def worker() -> None:
        while not stopping.is_set():
            t = time.perf_counter()
            stub.ModelInfer(req)
            with lock:
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # warm-up, discarded
    with lock:
        latencies.clear()
    cpu0, t0 = group_cpu_s(pgid), time.perf_counter()
    time.sleep(duration)
    cpu, wall = group_cpu_s(pgid) - cpu0, time.perf_counter() - t0
    with lock:
        ms = sorted(1000 * x for x in latencies)
    stopping.set()
    for t in threads:
        t.join()
    n = len(ms)
    return {
        "answer": answer, "requests": n, "rps": round(n / wall, 1), "p50_ms": round(ms[n // 2], 3),
        "p99_ms": round(ms[int(n * 0.99)], 3), "cpu_ms_per_req": round(1000 * cpu / n, 3),
        "server_cpu_pct": round(100 * cpu / wall, 1),
    }  # fmt: skip


def floor_ms(prep: dict[str, Any], body: dict[str, Any], n: int = 2000) -> float:
    """CPU ms of decode (raw tensors → array) + model.predict for the same request, in-process."""
    from maestrale import Registry
    from maestrale.serving.fast_infer import positional_decode
    from maestrale.serving.grpc_server import request_of
    from maestrale.serving.repository import load_served

    home = prep["home"]
    reg = Registry(database_url=f"sqlite:///{home}/registry.db", storage_url=f"file://{home}/artifacts")
    served = load_served(reg, "pv-nrel-50@champion", "champion")
    msg = grpc_request(body)

    def once() -> Any:
        req = request_of(msg)
        inputs = [(i.name, i.shape, i.datatype, i.parameters, i.data) for i in req.inputs]
        decoded = positional_decode(served, inputs, "pd")
        assert decoded is not None
        return served.predict(decoded.frame)

    assert np.isclose(float(once()[0]), prep["expected"], rtol=1e-12)
    t0 = time.process_time()
    for _ in range(n):
        once()
    return round(1000 * (time.process_time() - t0) / n, 4)


def measure(name: str, wd: Path, prep: dict[str, Any], body: dict[str, Any], args: Any) -> dict[str, Any]:
    import serving as S
    from _bench_common import free_port, stop, wait_http, wait_quiet

    port, gport = free_port(), free_port()
    cmd, cwd = S.server_command(name, port, wd, argparse.Namespace(broker_url=None))
    if name.startswith("maestrale"):
        cmd += ["--grpc-port", str(gport)]
    else:  # MLServer serves gRPC on the port of its settings.json
        gport = json.loads((cwd / "settings.json").read_text())["grpc_port"]
    env = S.server_env(name, prep, argparse.Namespace(broker_url=None))
    with (wd / f"{name}-grpc.log").open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}),
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 120, proc)
        wait_quiet(proc.pid, max_cores=0.05, window_s=0.5, timeout_s=30)
        child = [sys.executable, __file__, "--child", json.dumps([gport, proc.pid, body, args.duration,
                                                                  args.concurrency])]  # fmt: skip
        done = subprocess.run(
            child, capture_output=True, text=True, check=True, preexec_fn=lambda: os.sched_setaffinity(0, {1})
        )
        res: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        stop(proc)
    if not np.isclose(res["answer"], prep["expected"], rtol=1e-12):
        raise RuntimeError(f"{name}: predicted {res['answer']}, the model predicts {prep['expected']}")
    return res


def main() -> int:
    sys.path.insert(0, str(BENCH))
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        port, pgid, body, duration, concurrency = json.loads(sys.argv[2])
        print(json.dumps(load(port, pgid, body, duration, concurrency)))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SERVERS)}")
    args = p.parse_args()
    import serving as S

    S.ensure_mlserver()
    load_start = os.getloadavg()
    wd = Path(tempfile.mkdtemp(prefix="maestrale-serving-grpc-"))
    prep = S.prepare(wd, "ridge")
    body = json.loads(prep["body"])
    floor = floor_ms(prep, body)
    results: dict[str, Any] = {}
    for name in args.only.split(",") if args.only else SERVERS:
        results[name] = measure(name, wd, prep, body, args)
    mls = [v["cpu_ms_per_req"] for k, v in results.items() if k.startswith("mlserver")]
    anchor = min(mls) if mls else None
    print(f"{'server (gRPC)':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}{'CPU ratio':>10}"
          f"{'x floor':>8}", file=sys.stderr)  # fmt: skip
    for name, v in results.items():
        v["cpu_ratio_vs_mlserver"] = round(anchor / v["cpu_ms_per_req"], 2) if anchor else None
        v["x_floor"] = round(v["cpu_ms_per_req"] / floor, 2)
        print(f"{name:<18}{v['rps']:>8.0f}{v['p50_ms']:>8.2f}{v['p99_ms']:>8.2f}{v['cpu_ms_per_req']:>11.3f}"
              f"{v['cpu_ratio_vs_mlserver'] or 0:>9.2f}x{v['x_floor']:>7.1f}x", file=sys.stderr)  # fmt: skip
    print(f"floor (decode + predict in-process): {floor:.3f} ms CPU", file=sys.stderr)
    load_end = os.getloadavg()
    print(json.dumps({"grpc": results, "floor_ms": floor, "loadavg": [load_start[0], load_end[0]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
