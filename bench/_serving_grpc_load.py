"""The 1-row V2 gRPC load of ``bench/serving.py`` and ``bench/serving_grpc.py``, and its in-process floor.

Every server gets the same ``ModelInferRequest``: one FP64 ``[1]`` raw tensor per feature, request
parameter ``content_type = "pd"``; the first answer is checked against ``model.predict``. The load:
``concurrency`` blocking calls in flight on one channel, from threads of a child process (pinned to
the client CPUs), ``warmup`` s discarded then ``duration`` s measured (closed loop). The child keeps
grpcio's threads out of the parent, which goes on forking servers. Server CPU (user + system of its
process group, /proc) over the window gives ``cpu_ms_per_req``::

    with running("maestrale", wd, prep, args, {0}, grpc=True) as srv:
        res = measure_grpc(srv.proc.pid, srv.grpc_port, prep, {1}, duration=5, warmup=1, concurrency=8)
    res["cpu_ms_per_req"], res["rps"], res["p99_ms"]
    grpc_floor_ms(prep)  # decode (raw tensors -> array) + model.predict, in-process, CPU ms
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
MODEL = "pv-nrel-50"


def grpc_request(body: dict[str, Any]) -> Any:
    """The V2 gRPC request of the 1-row JSON body (``json.loads(prep["body"])``): raw FP64 tensors."""
    from maestrale.serving.proto import grpc_predict_v2_pb2 as pb

    return pb.ModelInferRequest(
        model_name=MODEL, parameters={"content_type": pb.InferParameter(string_param="pd")},
        inputs=[pb.ModelInferRequest.InferInputTensor(name=i["name"], datatype="FP64", shape=[1])
                for i in body["inputs"]],
        raw_input_contents=[np.asarray(i["data"], dtype=np.float64).tobytes() for i in body["inputs"]],
    )  # fmt: skip


def load(
    port: int, pgid: int, body: dict[str, Any], duration: float, warmup: float, concurrency: int
) -> dict[str, Any]:
    """Closed-loop gRPC load (in the child process): req/s, p50/p99, server CPU ms/req, client CPU %."""
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
    time.sleep(warmup)  # connection, first calls: discarded
    with lock:
        latencies.clear()
    cpu0, cli0, t0 = group_cpu_s(pgid), time.process_time(), time.perf_counter()
    time.sleep(duration)
    cpu, wall = group_cpu_s(pgid) - cpu0, time.perf_counter() - t0
    cli = time.process_time() - cli0
    with lock:
        ms = sorted(1000 * x for x in latencies)
    stopping.set()
    for t in threads:
        t.join()
    n = len(ms)
    if n == 0:
        raise RuntimeError("no gRPC request answered in the window")
    return {
        "answer": answer, "requests": n, "rps": round(n / wall, 1), "p50_ms": round(ms[n // 2], 3),
        "p99_ms": round(ms[min(n - 1, int(n * 0.99))], 3), "cpu_ms_per_req": round(1000 * cpu / n, 3),
        "server_cpu_pct": round(100 * cpu / wall, 1), "client_cpu_pct": round(100 * cli / wall, 1),
    }  # fmt: skip


def measure_grpc(
    pgid: int, grpc_port: int, prep: dict[str, Any], client_cpus: set[int] | None, *,
    duration: float, warmup: float, concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    """Run :func:`load` in a child process on ``client_cpus`` against a running server; check its answer."""
    args = [grpc_port, pgid, json.loads(prep["body"]), duration, warmup, concurrency]
    cpus = client_cpus
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(args)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"gRPC load exited {done.returncode}: {tail}")
    res: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not np.isclose(res["answer"], prep["expected"], rtol=1e-12):
        raise RuntimeError(f"gRPC predicted {res['answer']}, the model predicts {prep['expected']}")
    return res


def grpcio_noop_ms(
    prep: dict[str, Any], server_cpus: set[int] | None, client_cpus: set[int] | None, *,
    duration: float, warmup: float, concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    """The same load against a grpcio server that answers a prebuilt response (``_grpc_noop_server.py``):
    grpcio's own CPU per call, the part of a gRPC server's cost no servicer code can remove."""
    from _bench_common import free_port, stop

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "_grpc_noop_server.py"), str(port), repr(float(prep["expected"]))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        start_new_session=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the no-op gRPC server did not start (exit {proc.poll()})")
        return measure_grpc(proc.pid, port, prep, client_cpus, duration=duration, warmup=warmup,
                            concurrency=concurrency)  # fmt: skip
    finally:
        stop(proc)


def grpc_floor_ms(prep: dict[str, Any], n: int = 1000, rounds: int = 3) -> float:
    """CPU ms of decode (raw tensors -> array) + ``model.predict`` for the gRPC request, in-process,
    without grpcio around it: the physical limit of any gRPC server (best of ``rounds`` x ``n``)."""
    from _bench_common import best_cpu_ms

    from maestrale import Registry
    from maestrale.serving.grpc_server import _raw_positional
    from maestrale.serving.repository import load_served

    home = prep["home"]
    reg = Registry(database_url=f"sqlite:///{home}/registry.db", storage_url=f"file://{home}/artifacts")
    served = load_served(reg, f"{MODEL}@champion", "champion")
    msg = grpc_request(json.loads(prep["body"]))

    def once() -> Any:
        decoded = _raw_positional(served, msg)  # the server's own decoder: protobuf -> the model's array
        assert decoded is not None
        return served.predict(decoded[0].frame)

    assert np.isclose(float(np.asarray(once()).reshape(-1)[0]), prep["expected"], rtol=1e-12)
    return best_cpu_ms(once, n, rounds)


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    sys.path.insert(0, str(BENCH))
    print(json.dumps(load(*json.loads(sys.argv[2]))), flush=True)
