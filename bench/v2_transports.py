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
The calls are ``_serving_batch.py``'s, shared with ``bench/serving.py``'s batch section (which also
runs them against MLServer, with logging on, and reports the server's CPU per request).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving_batch import CLIENTS, calls, run_batch, tile_rows


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="v2-transports-"))
    env = _register(home)
    X = tile_rows(pd.read_parquet(home / "X.parquet"), args.rows)
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
        transports = calls(X, port, gport, content_type=None)
        expected = transports["REST JSON"]()
        print(f"{len(X):,} rows x {X.shape[1]} FP64 features per request, {args.repeat} requests each")
        for name, res in run_batch(transports, expected, args.repeat).items():
            if "error" in res:
                print(f"{name} ({CLIENTS[name]}): FAILED {res['error']}")
                continue
            print(f"{name + ' (' + CLIENTS[name] + ')':50s} {res['median_ms']:8.1f} ms median "
                  f"({res['best_ms']:.1f} best)  {res['rows_per_s']:>12,} rows/s")  # fmt: skip
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
