"""Model serving: Maestrale's V2 server against MLServer 1.7.1 and a bare FastAPI endpoint.

Run with the project's interpreter::

    /work/main/.venv/bin/python bench/serving.py            # 20 s per server (~5 min in all)
    /work/main/.venv/bin/python bench/serving.py --quick    # 5 s per server (~2-3 min)
    /work/main/.venv/bin/python bench/serving.py --quick --only maestrale --no-batch --no-grpc

What it does
------------
1. ``bench/setup_mlserver.sh`` creates ``bench/.venv-mlserver`` (``mlserver==1.7.1``,
   ``mlserver-sklearn==1.7.1``, ``uvloop<0.22``, Maestrale from this repo) the first time.
2. Fits one model on the packaged NREL system 50 data (``pv_features``, 8 float features;
   ``--model ridge`` (default) or ``hgb``), registers it in a SQLite registry in a temp folder as
   ``pv-nrel-50`` (alias ``champion``); also dumps it with joblib for MLServer's sklearn runtime.
3. Starts each server in turn as a subprocess (one process, no access log, one BLAS thread),
   pinned to CPU 0 while the load generator runs on CPU 1:

   * ``maestrale`` -- ``maestrale serve pv-nrel-50@champion``: prediction logging on (the
     default), published to RabbitMQ (``--broker-url``, this machine's broker by default) under a
     bus namespace of the run's own, as a serving pod publishes in production; nothing consumes
     them during the run, and the namespace is deleted at the end. ``--broker-url memory://``
     measures the embedded mode instead: with no broker, the records are stored by the server
     process itself in the monitor's store (SQLite here);
   * ``maestrale-nolog`` -- the same with ``--no-log``;
   * ``mlserver-runtime`` -- ``mlserver start`` with ``maestrale.serving.mlserver_runtime.MaestraleRuntime``
     loading ``pv-nrel-50@champion`` from the same registry;
   * ``mlserver-sklearn`` -- ``mlserver start`` with ``mlserver_sklearn.SKLearnModel`` (stock runtime);
   * ``fastapi`` -- ``bench/_serving_fastapi.py`` under uvicorn: parse, DataFrame, predict, answer;
   * ``maestrale-w2`` -- ``maestrale serve --workers 2``, logging on, unpinned: two server
     processes on both cores, the load generator beside them (a 2-core machine has no third core).

   MLServer runs with ``parallel_workers: 0`` (predictions in the server process), ``debug:
   false``, loopback only; its gRPC and metrics servers stay on, as in every MLServer deployment.
4. Every server gets the same request: one row, one FP64 input per feature, request
   ``parameters.content_type = "pd"``, checked against ``model.predict`` (and ``model_version``).
   Then ``--warmup`` s of load, discarded, then ``--duration`` s measured, closed loop:
   ``--concurrency`` keep-alive connections, one request in flight each (``_serving_load.py``).
   Then ``--duration`` s open loop: Poisson arrivals at ``--open-rate`` req/s per server core,
   latency from each request's scheduled send (what a steady rate meets, not a saturation queue).
   Then gRPC (``--no-grpc`` skips it), for ``maestrale`` and both MLServers, on the same server
   process (started with ``--grpc-port``; MLServer always serves gRPC): the same row as a
   ``ModelInferRequest`` (one FP64 ``[1]`` raw tensor per feature, ``content_type`` pd), checked
   against ``model.predict``; ``--warmup`` s then ``--duration`` s closed loop, ``--concurrency``
   blocking calls on one channel from a child process on the client CPU (``_serving_grpc_load.py``).
5. Batch (``--no-batch`` skips it): ``maestrale`` and ``maestrale-nolog`` (with ``--grpc-port``)
   and ``mlserver-runtime`` started again, each sent ``--batch-rows`` rows (10,000) per request,
   ``--batch-repeat`` requests per transport: REST JSON (httpx), REST binary tensors
   (tritonclient.http, binary_data) and gRPC (tritonclient.grpc, raw contents); see
   ``_serving_batch.py``.

Table (stderr) and ONE JSON line (stdout)
-----------------------------------------
Closed loop, one row per server: ``req/s``; ``p50``/``p99 ms`` latency at saturation (reported,
not targeted); ``ratio`` req/s over the faster MLServer's; ``CPU ms/req`` the server's CPU (user +
system of its process group, /proc) per request over the window: the figure that holds when other
work shares the machine (req/s and latency do not: see ``srv CPU``, the share of a core the server
got, ``cli CPU`` the load generator's, and the load averages in the JSON); ``CPU ratio``
MLServer's CPU ms/req (its sklearn runtime, as shipped; else the cheaper MLServer run) over this
server's; ``x floor`` its CPU ms/req over the floor. Then
one open-loop line per server, then the floor: the CPU of Maestrale's hot path for the 1-row
request in-process, without an HTTP server (JSON parse, decode to an array, ``model.predict``;
best of 3 x 1000 calls), the physical limit of any server (for context, the general path's
DataFrame build and ``model.predict(DataFrame)``, wall medians, follow it). The gRPC block, one row
per server beside its REST figures: ``req/s``, ``p50``/``p99 ms``, ``CPU ms/req`` (server CPU per
gRPC request, /proc, as for REST), ``CPU ratio`` MLServer's (sklearn runtime) gRPC CPU ms/req over this
server's, ``x floor`` over the gRPC floor (the raw tensors decoded to an array and ``model.predict``,
in-process, without grpcio), then ``REST CPU``/``REST ratio`` (the closed-loop figures); in the JSON
as ``servers.<name>.grpc`` and ``grpc_floor_ms``. Batch, one row per server and transport: ms per
request (median, best; client included), ``rows/s`` (rows over the median), ``srv CPU ms`` per
request and ``rows/CPU s`` (rows per second of server CPU). MLServer 1.7.1's REST does not take
binary tensors (it answers 422): that cell prints FAILED.

Targets (issue 13; ``maestrale``, logging on, 1 row; ``--check`` exits 2 if one is missed)
-------------------------------------------------------------------------------------------
* ``cpu_ms_per_req`` <= 0.5 ms server CPU per request (REST JSON);
* ``cpu_ratio`` >= 5x: MLServer's CPU ms/request (its sklearn runtime) over maestrale's; the ratio
  to MLServer hosting Maestrale's runtime (Maestrale's codec in MLServer's server) is printed beside it;
* ``open_loop_p99_ms`` <= 5 ms p99 at 300 req/s per core, open loop (every ``maestrale*`` server);
* ``workers2_rps_ratio`` >= 1.8x: ``maestrale-w2`` req/s over ``maestrale``'s, both measured again
  under wrk (``_serving_wrk.py``, C, a few µs of CPU per request: on 2 cores the load generator's
  CPU comes off the workers' share; ``--no-wrk``, or no wrk: the asyncio client's ratio instead);
* ``grpc_cpu_ms_per_req`` <= 0.5 ms server CPU per 1-row gRPC request (``maestrale``);
* ``grpc_cpu_ratio`` >= 3x: MLServer's (sklearn runtime) gRPC CPU ms/request over maestrale's.

A target not measured (``--only``, ``--no-grpc``, ``--open-rate 0``) prints ``-`` and counts as missed
for ``--check``. ``bench/serving_grpc.py`` runs the gRPC load alone (with ``maestrale-nolog``).
Logging's cost (``maestrale`` against ``maestrale-nolog``, % of req/s) is reported, not targeted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _bench_common import group_cpu_s, group_rss_mb
from _serving_batch import calls, run_batch, tile_rows
from _serving_grpc_load import grpc_floor_ms, grpcio_noop_ms, measure_grpc
from _serving_load import run_load, run_open_loop
from _serving_report import build_report, print_table
from _serving_servers import (
    MLSERVERS,
    NAME,
    check_answer,
    ensure_mlserver,
    floor_ms,
    log,
    pinned_client,
    prepare,
    running,
)
from _serving_wrk import run_wrk

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"  # the test and CI broker of this machine
SCALING = ("maestrale", "maestrale-w2")  # the --workers 2 ratio's two servers, measured again under wrk
SERVERS = ("maestrale", "maestrale-nolog", "mlserver-runtime", "mlserver-sklearn", "fastapi", "maestrale-w2")
# maestrale-nolog beside maestrale: logging 10,000 records per request is most of a batch's cost;
# MLServer with Maestrale's runtime: the same model code behind MLServer's decode and transports
BATCH_SERVERS = ("maestrale", "maestrale-nolog", "mlserver-runtime")
# the 1-row gRPC load runs against these while their REST figures are taken (one start each)
GRPC_SERVERS = ("maestrale", "mlserver-runtime", "mlserver-sklearn")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per server")
    p.add_argument("--warmup", type=float, default=2.0, help="discarded seconds of load before")
    p.add_argument("--concurrency", type=int, default=8, help="connections, one request in flight each")
    p.add_argument("--quick", action="store_true", help="5 s per server, 1 s warm-up, 5 batch requests")
    p.add_argument("--model", choices=["ridge", "hgb"], default="ridge")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SERVERS)}")
    p.add_argument(
        "--broker-url", default=DEFAULT_BROKER,
        help="where the logging servers publish their predictions (RabbitMQ, as in production; "
        "memory:// stores them in the server process's embedded monitor store instead)",
    )  # fmt: skip
    p.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    p.add_argument("--workdir", type=Path, help="keep scratch files and server logs here")
    p.add_argument("--check", action="store_true", help="exit 2 if a target is missed")
    p.add_argument(
        "--open-rate", type=float, default=300.0,
        help="open-loop Poisson req/s after the closed loop (per server core; 0: skip)",
    )  # fmt: skip
    p.add_argument("--no-grpc", action="store_true", help="skip the 1-row gRPC load")
    p.add_argument("--no-wrk", action="store_true", help="no wrk run for the --workers 2 ratio")
    p.add_argument("--no-batch", action="store_true", help="skip the many-rows-per-request section")
    p.add_argument("--batch-rows", type=int, default=10_000, help="rows per batch request")
    p.add_argument("--batch-repeat", type=int, default=15, help="timed batch requests per transport")
    args = p.parse_args()
    if args.quick:
        args.duration, args.warmup, args.batch_repeat = 5.0, 1.0, 5
    return args


def cpu_split(args: argparse.Namespace, name: str = "") -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): CPU 0 and CPU 1 unless unpinned (``--no-pin``, maestrale-w2, 1 CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if args.no_pin or len(cpus) < 2 or name == "maestrale-w2":
        return None, None
    return {cpus[0]}, {cpus[1]}


def measure(name: str, workdir: Path, prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop then open loop against one server: ``measure("maestrale", wd, prep, args)["rps"]``."""
    server_cpus, client_cpus = cpu_split(args, name)
    path = f"/v2/models/{NAME}/infer"
    grpc = not args.no_grpc and name in GRPC_SERVERS
    with running(name, workdir, prep, args, server_cpus, grpc=grpc) as srv:
        proc, info = srv.proc, srv.info
        info["check"] = check_answer(srv.port, prep, name)
        info["idle_rss_mb"], info["processes"] = group_rss_mb(proc.pid)
        with pinned_client(client_cpus):
            if args.warmup > 0:
                run_load("127.0.0.1", srv.port, path, prep["body"], duration=args.warmup,
                         concurrency=args.concurrency, client=args.client)  # fmt: skip
            cpu0, t0 = group_cpu_s(proc.pid), time.perf_counter()
            res = run_load("127.0.0.1", srv.port, path, prep["body"], duration=args.duration,
                           concurrency=args.concurrency, client=args.client)  # fmt: skip
            server_cpu_s, wall = group_cpu_s(proc.pid) - cpu0, time.perf_counter() - t0
        info.update(res.summary())
        info["server_cpu_pct"] = round(100 * server_cpu_s / wall, 1)
        # CPU per request: what the server costs whatever else the machine runs (req/s is not)
        info["cpu_ms_per_req"] = round(1000 * server_cpu_s / res.requests, 3) if res.requests else None
        info["rss_mb"], _ = group_rss_mb(proc.pid)
        if name in SCALING and not args.no_wrk:  # the --workers 2 ratio, under a load generator in C
            with pinned_client(client_cpus):
                cpu0 = group_cpu_s(proc.pid)
                info["wrk"] = run_wrk("127.0.0.1", srv.port, path, prep["body"], duration=args.duration,
                                      concurrency=args.concurrency)  # fmt: skip
                info["wrk"]["cpu_ms_per_req"] = round(
                    1000 * (group_cpu_s(proc.pid) - cpu0) / max(info["wrk"]["requests"], 1), 3
                )
        if args.open_rate > 0:  # the latency a steady rate meets, not the saturation queue
            rate = args.open_rate * (2 if name == "maestrale-w2" else 1)  # per server core
            with pinned_client(client_cpus):
                o = run_open_loop("127.0.0.1", srv.port, path, prep["body"], rate=rate,
                                  duration=args.duration).summary()  # fmt: skip
            info["open_loop"] = {"rate": rate, "achieved_rps": o["rps"], "p50_ms": o["p50_ms"],
                                 "p99_ms": o["p99_ms"], "errors": o["errors"]}  # fmt: skip
        if grpc and srv.grpc_port is not None:  # the same server process, now over its gRPC port
            try:
                info["grpc"] = measure_grpc(proc.pid, srv.grpc_port, prep, client_cpus,
                                            duration=args.duration, warmup=args.warmup,
                                            concurrency=args.concurrency)  # fmt: skip
            except Exception as exc:  # the REST figures stand; run_servers moves this to the errors
                info["grpc"] = {"error": f"{type(exc).__name__}: {exc}"}
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode} during the load")
    return info


def measure_batch(name: str, workdir: Path, prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``--batch-rows`` rows per request over REST JSON, REST binary and gRPC against one server."""
    server_cpus, client_cpus = cpu_split(args, name)
    Xb = tile_rows(prep["X"], args.batch_rows)
    expected = prep["model"].predict(Xb)
    with running(name, workdir, prep, args, server_cpus, grpc=True, tag="-batch") as srv:
        transports = calls(Xb, srv.port, srv.grpc_port)  # the JSON body is encoded here, once
        with pinned_client(client_cpus):
            res = run_batch(transports, expected, args.batch_repeat, pgid=srv.proc.pid)
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{name} exited {srv.proc.returncode} during the batch")
    return res


def run_servers(
    names: list[str], workdir: Path, prep: dict[str, Any], args: argparse.Namespace, errors: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every server's 1-row figures, then the batch section; failures go to ``errors``."""
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        log(f"[{name}] ...")
        try:
            res = measure(name, workdir, prep, args)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"[{name}] FAILED: {errors[name]}")
            continue
        if "error" in res.get("grpc", {}):
            errors[f"{name}-grpc"] = res.pop("grpc")["error"]
            log(f"[{name}] gRPC FAILED: {errors[name + '-grpc']}")
        results[name] = res
        log(
            f"[{name}] {res['rps']:.0f} req/s, p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms, "
            f"{res['errors']} errors, {res['cpu_ms_per_req']} ms CPU/req "
            f"(started in {res['startup_s']:.1f} s)"
        )
        if g := res.get("grpc"):
            log(f"[{name}] gRPC {g['rps']:.0f} req/s, p50 {g['p50_ms']:.2f} ms, p99 {g['p99_ms']:.2f} ms, "
                f"{g['cpu_ms_per_req']} ms CPU/req")  # fmt: skip
    batch: dict[str, Any] = {}
    if not args.no_batch:
        batch = {"rows": args.batch_rows, "features": prep["X"].shape[1], "repeat": args.batch_repeat,
                 "servers": {}}  # fmt: skip
        for name in (n for n in BATCH_SERVERS if n in names):
            log(f"[{name}] batch of {args.batch_rows:,} rows ...")
            try:
                batch["servers"][name] = measure_batch(name, workdir, prep, args)
            except Exception as exc:
                errors[f"{name}-batch"] = f"{type(exc).__name__}: {exc}"
                log(f"[{name}] batch FAILED: {errors[name + '-batch']}")
    return results, batch


def select(args: argparse.Namespace, errors: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The servers to run (``--only``) and MLServer's version info (set up first if needed)."""
    names = list(SERVERS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        log(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
        raise SystemExit(64)
    mls_info: dict[str, str] = {}
    if any(n in MLSERVERS for n in names):
        try:
            mls_info = ensure_mlserver()
        except (subprocess.CalledProcessError, OSError) as exc:
            for n in (n for n in MLSERVERS if n in names):
                errors[n] = f"bench/setup_mlserver.sh failed: {exc}"
            names = [n for n in names if n not in MLSERVERS]
    return names, mls_info


def drop_namespace(url: str, namespace: str) -> None:
    """Delete what the logging servers declared under `namespace` on the broker (nothing on memory://)."""
    if not url.startswith("amqp"):
        return
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.monitoring.service import INGEST_TYPES, QUEUE

    bus = RabbitTransport(url, namespace=namespace)
    try:
        # declared here too (as the servers' publishes declared it, with its retry queues), so that
        # delete() knows every queue of the namespace, then drops them and the exchange
        bus.declare(QUEUE, INGEST_TYPES)
        bus.delete()
    except Exception as exc:  # a benchmark's cleanup: say so, do not hide the figures
        log(f"could not delete the bus namespace {namespace}: {exc}")
    finally:
        bus.close()


def context(
    args: argparse.Namespace, mls_info: dict[str, str], load_start: tuple[float, ...]
) -> dict[str, Any]:
    """The run's configuration, versions and machine load, for the JSON line."""
    import sklearn

    import maestrale

    return {
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "rows_per_request": 1,
            "model": args.model,
            "client": args.client,
            "pinned": cpu_split(args)[0] is not None,
            "broker_url": args.broker_url,
            "bus_namespace": args.bus_namespace,
            "request": "one FP64 [1] input per feature (8), request content_type pd",
            "open_rate_per_core": args.open_rate,
        },
        "versions": {
            "maestrale": maestrale.__version__,
            "mlserver": mls_info.get("mlserver"),
            "sklearn": {"project": sklearn.__version__, "mlserver_venv": mls_info.get("sklearn")},
            "python": platform.python_version(),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
    }


def main() -> int:
    args = parse_args()
    t_start = time.perf_counter()
    errors: dict[str, str] = {}
    load_start = os.getloadavg()
    names, mls_info = select(args, errors)
    if load_start[0] > 1.0:
        log(f"warning: 1-min load average {load_start[0]:.2f} on {os.cpu_count()} CPUs: noisy timings")
    tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="maestrale-serving-")) if tmp else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    prep: dict[str, Any] = {}
    # the logging servers publish under a namespace of their own: nothing consumes it, and it is
    # deleted at the end (queues and exchanges), as a test's would be
    args.bus_namespace = f"bench-serving-{uuid.uuid4().hex[:8]}"
    try:
        prep = prepare(workdir, args.model)
        prep["floor_ms"] = floor_ms(prep)
        if not args.no_grpc and any(n in GRPC_SERVERS for n in names):
            prep["grpc_floor_ms"] = grpc_floor_ms(prep)
        log(
            f"model {args.model} registered as {NAME}:{prep['version']} (champion); "
            f"{args.duration:g} s per server after {args.warmup:g} s warm-up, "
            f"concurrency {args.concurrency}, client {args.client}"
        )
        results, batch = run_servers(names, workdir, prep, args, errors)
        if not args.no_grpc and "maestrale" in results:
            server_cpus, client_cpus = cpu_split(args, "maestrale")
            log("[grpcio-noop] ...")
            try:
                prep["grpcio_noop"] = grpcio_noop_ms(
                    prep, server_cpus, client_cpus,
                    duration=args.duration, warmup=args.warmup, concurrency=args.concurrency,
                )  # fmt: skip
            except Exception as exc:
                errors["grpcio-noop"] = f"{type(exc).__name__}: {exc}"
    finally:
        if tmp:
            shutil.rmtree(workdir, ignore_errors=True)
        drop_namespace(args.broker_url, args.bus_namespace)
    rep = build_report(
        results, errors, batch, prep.get("model_call_ms"), prep.get("floor_ms"), prep.get("grpc_floor_ms")
    )
    rep["grpcio_noop"] = prep.get("grpcio_noop")
    rep.update(context(args, mls_info, load_start))
    rep["runtime_s"] = round(time.perf_counter() - t_start, 1)
    print_table(rep)
    log(f"total {rep['runtime_s']:.0f} s")
    print(json.dumps(rep), flush=True)
    if errors:
        return 1
    if args.check and not all(rep["met"].values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
