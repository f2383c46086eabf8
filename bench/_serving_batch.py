"""A many-row V2 batch per request over three transports: REST JSON, REST binary tensors, gRPC.

Shared by ``bench/serving.py`` (its batch section) and ``bench/v2_transports.py``. The same batch
(``rows`` rows of the features, tiled) goes out as: JSON tensors with httpx (the body encoded once,
the answer parsed), and with ``tritonclient.http`` (binary tensors in and out) and
``tritonclient.grpc`` (raw contents) with their defaults, the tensors built from the frame inside
each call. Each answer is checked against ``expected``; wall time per request is client included.
The server's CPU comes from /proc in clock ticks (10 ms): over ``--quick``'s 6 calls per transport
it is good to ~2 ms per request, finer with more repeats::

    Xb = tile_rows(X, 10_000)
    res = run_batch(calls(Xb, port, grpc_port), expected=model.predict(Xb), repeat=15, pgid=proc.pid)
    res["gRPC"]["rows_per_s"]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _bench_common import group_cpu_s, wall_samples

MODEL = "pv-nrel-50"
TRANSPORTS = ("REST JSON", "REST binary", "gRPC")
CLIENTS = {
    "REST JSON": "httpx, JSON tensors",
    "REST binary": "tritonclient.http, binary_data",
    "gRPC": "tritonclient.grpc, raw contents",
}


def tile_rows(X: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``rows`` rows of ``X`` repeated from the top: ``tile_rows(X, 10_000)``."""
    return pd.concat([X] * (rows // len(X) + 1), ignore_index=True).iloc[:rows]


def calls(
    X: pd.DataFrame, port: int, grpc_port: int | None, content_type: str | None = "pd", model: str = MODEL
) -> dict[str, Callable[[], np.ndarray]]:
    """One callable per transport, each sending the whole of ``X`` and returning the predictions.

    ``content_type``: the request parameter (``pd``, as bench/serving.py's 1-row request; None: none).
    """
    import httpx
    import tritonclient.grpc as tgrpc
    import tritonclient.http as thttp

    params = {"content_type": content_type} if content_type else None
    inputs = [{"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns]
    body = json.dumps({"inputs": inputs, **({"parameters": params} if params else {})}).encode()
    rest = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    http = thttp.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=60)

    def triton(module: Any, client: Any) -> np.ndarray:
        tensors = []
        for c in X.columns:
            t = module.InferInput(c, [len(X)], "FP64")
            t.set_data_from_numpy(X[c].to_numpy(np.float64))
            tensors.append(t)
        out = client.infer(model, tensors, parameters=params).as_numpy("predict")
        if out is None or out.size != len(X):
            raise RuntimeError(f"answer without {len(X)} 'predict' values: {out!r}"[:300])
        return np.asarray(out)

    def rest_json() -> np.ndarray:
        r = rest.post(f"/v2/models/{model}/infer", content=body, headers={"content-type": "application/json"})
        if r.status_code != 200:
            raise RuntimeError(f"answered {r.status_code}: {r.text[:300]}")
        return np.asarray(next(o for o in r.json()["outputs"] if o["name"] == "predict")["data"])

    out: dict[str, Callable[[], np.ndarray]] = {
        "REST JSON": rest_json,
        "REST binary": lambda: triton(thttp, http),
    }
    if grpc_port is not None:
        grpc = tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        out["gRPC"] = lambda: triton(tgrpc, grpc)
    return out


def timed(call: Callable[[], np.ndarray], repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` calls, after one discarded (connection, first request)."""
    return wall_samples(call, repeat)


def run_batch(
    transports: dict[str, Callable[[], np.ndarray]],
    expected: np.ndarray,
    repeat: int,
    pgid: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Per transport: median and best ms per request, rows/s (median), and with ``pgid`` (the server's
    process group) the server's CPU ms per request and rows per server CPU second; a transport that
    fails or answers wrong gets ``{"error": ...}`` and the others still run."""
    rows = len(expected)
    out: dict[str, dict[str, Any]] = {}
    for name, call in transports.items():
        try:
            got = call()
            if not np.allclose(np.asarray(got, dtype=float).reshape(-1), expected, rtol=1e-12, atol=1e-9):
                raise RuntimeError("predictions differ from model.predict")
            cpu0 = group_cpu_s(pgid) if pgid else 0.0
            times = timed(call, repeat)
            # timed() makes repeat + 1 calls (the first one discarded from the wall times)
            cpu = (group_cpu_s(pgid) - cpu0) / (repeat + 1) if pgid else None
        except Exception as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            out[name] = {"error": f"{type(exc).__name__}: {first}"}
            continue
        median = float(np.median(times))
        res: dict[str, Any] = {
            "median_ms": round(1e3 * median, 2),
            "best_ms": round(1e3 * min(times), 2),
            "rows_per_s": round(rows / median),
        }
        if cpu:
            res["server_cpu_ms_per_req"] = round(1e3 * cpu, 2)
            res["rows_per_server_cpu_s"] = round(rows / cpu)
        out[name] = res
    return out
