"""One V2 batch over the three transports of `maestrale serve`: REST JSON, REST binary tensors, gRPC.

Run with the project's interpreter (needs the dev extra: tritonclient, grpcio)::

    /work/main/.venv/bin/python bench/v2_transports.py              # 10,000 rows, 15 requests each
    /work/main/.venv/bin/python bench/v2_transports.py --rows 1000 --repeat 50

It registers a Ridge on NREL system 50 (`pv_features`, 8 FP64 features) in a SQLite registry in a
temp folder, starts `maestrale serve pv-nrel-50@champion --grpc-port G --no-log --auth off` as a
process, and sends the same `--rows`-row batch (the features tiled) as: JSON tensors with httpx (the
body encoded once, the answer parsed), and with tritonclient.http and tritonclient.grpc with their
defaults (binary tensors in and out; raw contents). Each answer is checked against the JSON one
(1e-12); it prints the median and best wall time per request, client included, and rows per second.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(home: Path) -> dict[str, str]:
    from sklearn.linear_model import Ridge

    from maestrale import Registry
    from maestrale.datasets import nrel_system50, pv_features

    env = {
        "MAESTRALE_HOME": str(home), "MAESTRALE_DATABASE_URL": f"sqlite:///{home}/registry.db",
        "MAESTRALE_STORAGE_URL": f"file://{home}/artifacts", "MAESTRALE_BROKER_URL": "memory://",
    }  # fmt: skip
    df = nrel_system50("1h").dropna(subset=["power_kw"])
    X = pv_features(df).dropna()
    reg = Registry(database_url=env["MAESTRALE_DATABASE_URL"], storage_url=env["MAESTRALE_STORAGE_URL"])
    mv = reg.register("pv-nrel-50", Ridge().fit(X, df.loc[X.index, "power_kw"]), input_example=X.head())
    reg.set_alias("pv-nrel-50", "champion", mv.version)
    X.reset_index(drop=True).to_parquet(home / "X.parquet")
    return env


def _timed(call: Callable[[], np.ndarray], repeat: int) -> list[float]:
    call()  # warm-up: connection, first request
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    import tritonclient.grpc as tgrpc
    import tritonclient.http as thttp

    home = Path(tempfile.mkdtemp(prefix="v2-transports-"))
    env = _register(home)
    X = pd.read_parquet(home / "X.parquet")
    X = pd.concat([X] * (args.rows // len(X) + 1), ignore_index=True).iloc[: args.rows]
    port, gport = _free_port(), _free_port()
    exe = str(Path(sys.executable).parent / "maestrale")
    cmd = [exe, "serve", "pv-nrel-50@champion", "--port", str(port), "--grpc-port", str(gport), "--no-log",
           "--auth", "off", "--reload-poll", "0", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        inputs = [
            {"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns
        ]
        body = json.dumps({"inputs": inputs}).encode()
        rest = httpx.Client(base_url=url, timeout=60)
        http = thttp.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=60)
        grpc = tgrpc.InferenceServerClient(f"127.0.0.1:{gport}")

        def triton(module, client) -> np.ndarray:
            tensors = []
            for c in X.columns:
                t = module.InferInput(c, [len(X)], "FP64")
                t.set_data_from_numpy(X[c].to_numpy(np.float64))
                tensors.append(t)
            return client.infer("pv-nrel-50", tensors).as_numpy("predict")

        def rest_json() -> np.ndarray:
            r = rest.post(
                "/v2/models/pv-nrel-50/infer", content=body, headers={"content-type": "application/json"}
            )
            return np.asarray(r.json()["outputs"][0]["data"])

        calls = {
            "REST JSON (httpx)": rest_json,
            "REST binary (tritonclient.http)": lambda: triton(thttp, http),
            "gRPC (tritonclient.grpc)": lambda: triton(tgrpc, grpc),
        }
        expected = rest_json()
        print(f"{len(X):,} rows x {X.shape[1]} FP64 features per request, {args.repeat} requests each")
        for name, call in calls.items():
            assert np.allclose(call(), expected, rtol=0, atol=1e-12), name
            times = _timed(call, args.repeat)
            median = float(np.median(times))
            print(f"{name:34s} {median * 1e3:8.1f} ms median ({min(times) * 1e3:.1f} best)  "
                  f"{len(X) / median:>12,.0f} rows/s")  # fmt: skip
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
